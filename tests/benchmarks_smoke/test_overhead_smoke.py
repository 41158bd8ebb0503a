"""A smoke test of benchmarks/overhead.py with a tiny budget (Ray Tune and Keras left out: their starts cost seconds;
the warm starts of Lightning and Keras trials have tests of their own in tests/lightning and tests/keras)."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "overhead.py"


def test_the_overhead_benchmark_writes_its_tables(tmp_path):
    finished = subprocess.run([sys.executable, str(SCRIPT), "--trials", "4", "--repeats", "2", "--reports", "20",
                               "--together", "5", "--framework-trials", "1", "--frameworks", "lightning",
                               "--concurrency", "1", "--skip-ray", "--out", str(tmp_path)],
                              capture_output=True, text=True, timeout=280)
    assert finished.returncode == 0, finished.stderr[-3000:]
    results = json.loads((tmp_path / "overhead.json").read_text())
    systems = [row["system"] for row in results["launch"]]
    assert systems == ["hpt (random, SQLite, warm starts)", "hpt (random, SQLite, HPT_WARM_START=0)",
                       "Optuna in memory, 2 threads (no process per trial)",
                       "Optuna + SQLite, 2 worker processes (no process per trial)",
                       "Optuna in memory, a subprocess per trial", "bare subprocess per trial, no tuner (the floor)"]
    assert all(row["trials"] == 4 and row["repeats"] == 2 and row["loop_ms_per_trial"] > 0
               for row in results["launch"])
    hpt, together, optuna = results["ingestion"]
    assert [hpt["system"], together["system"], optuna["system"]] == [
        "hpt `ctx.report_training`, a call per report", "hpt `ctx.report_training_many`, 5 reports a call",
        "Optuna trial.report (SQLite)"]
    for row in (hpt, together):
        assert row["reports_stored"] == row["reports_sent"] == 8 * 20 and row["lost"] == row["duplicated"] == 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
    assert optuna["reports_stored"] == 8 * 20
    assert [(row["framework"], row["concurrency"]) for row in results["frameworks"]] == [("lightning", 1)]
    assert all(row["cold_median_s"] > 0 for row in results["frameworks"])
    assert "## System overhead" in (tmp_path / "overhead.md").read_text()
