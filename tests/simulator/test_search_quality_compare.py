"""benchmarks/search_quality_compare.py: a change to a method against its stored runs, on runs made up here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "search_quality_compare.py"
METHOD = "hpt adaptive_asha + gp + adaptive fidelity"


def run_record(method: str, task: str, seed: int, time: float, value: float) -> dict:
    """A stored run that reported `value` at simulated `time` and nothing better (smaller is better)."""
    return {"task": task, "method": method, "seed": seed, "workers": 4, "budget_multiple": 25.0, "budget": 100.0,
            "median_full_time": 4.0, "smaller_is_better": True, "best_known": None,
            "incumbent": [[time, value]], "trials": 10, "wall_seconds": 0.1}


def write_runs(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def compare(tmp_path: Path, change: list[dict]) -> subprocess.CompletedProcess:
    stored = [run_record(method, task, seed, time, value)
              for task in ("hartmann:h3-good", "hartmann:h6-good") for seed in range(4)
              for method, time, value in (("hpt random", 50.0, 1.0), (METHOD, 20.0, 0.5), ("optuna tpe", 30.0, 0.4))]
    stored.append(run_record("smac multi-fidelity", "hartmann:h3-good", 0, 1.0, 0.0))  # one seed: not a peer here
    return subprocess.run([sys.executable, str(SCRIPT), str(write_runs(tmp_path / "change.jsonl", change)),
                           "--method", METHOD, "--runs", str(write_runs(tmp_path / "stored.jsonl", stored))],
                          capture_output=True, text=True, timeout=60)


def test_a_change_that_ends_lower_on_every_seed_has_p_1_and_is_compared_with_the_peers(tmp_path: Path) -> None:
    finished = compare(tmp_path, [run_record(METHOD, "hartmann:h3-good", seed, 10.0, 0.2) for seed in range(4)])
    assert finished.returncode == 0, finished.stderr
    # regret against the best value of all runs (0.2): stored 0.3, the change 0, the peer 0.2
    assert "| hartmann:h3-good | 0.3 | 0 | 1.00 | no | yes |" in finished.stdout
    assert "hartmann:h6-good" not in finished.stdout  # the change has no run there
    # random's final regret (0.8) is reached at 10 by the change, 20 by the stored runs, 30 by the peer
    assert ("The change's median is lower on 1 of 1 tasks and higher on 0; P 1.000; at or below every peer on 1 "
            "(stored: 0); 3.00 times the fastest peer's speed (stored: 1.50).") in finished.stdout


def test_a_file_without_runs_of_the_method_is_an_error_naming_it(tmp_path: Path) -> None:
    finished = compare(tmp_path, [run_record("hpt random", "hartmann:h3-good", 0, 10.0, 0.2)])
    assert finished.returncode == 2
    assert f"holds no run of {METHOD!r}" in finished.stderr
