"""`hpt simulate CONFIG --benchmark NAME ...`, through the subcommand that `add_simulate_command` adds."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import pytest

from hpt_core.simulator import default_data_dir
from hpt_core.simulator.cli import add_simulate_command

needs_nasbench201 = pytest.mark.skipif(not (default_data_dir() / "nasbench201").is_dir(),
                                       reason=f"no NAS-Bench-201 data at {default_data_dir() / 'nasbench201'}")

USER_BENCHMARK = '''
from hpt_core.simulator import Benchmark, Evaluation


class Parabola(Benchmark):
    name = "parabola"
    tasks = ("narrow", "wide")
    metric = "loss"

    def hyperparameters(self):
        return {"x": {"type": "double", "minval": -1.0, "maxval": 1.0}}

    def lengths(self):
        return tuple(range(1, 9))

    def evaluate(self, hparams, length):
        width = 1.0 if self.task == "narrow" else 4.0
        return Evaluation({"loss": width * hparams["x"] ** 2 + 1 / length}, elapsed=60.0 * length)

    def best_value(self):
        return 0.125
'''


def hpt(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="hpt")
    add_simulate_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["simulate", *argv])
    return args.handler(args)


def write(path: Path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


@needs_nasbench201
def test_simulate_asha_on_nasbench201(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path / "asha.yaml", """\
        searcher:
          name: adaptive_asha
          max_length: {epochs: 200}
          divisor: 16
          max_trials: 64
          max_concurrent_trials: 8
        """)
    assert hpt(config, "--benchmark", "nasbench201", "--task", "cifar100", "--workers", "8", "--seed", "3") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "simulating adaptive_asha on nasbench201 task cifar100 (test_accuracy, 8 workers)"
    assert lines[1].startswith("the search ended after ") and "8 workers, busy" in lines[1]
    assert lines[2].startswith("best test_accuracy ") and "edge0=" in lines[2]
    assert lines[3].startswith("regret ") and lines[3].endswith("(best known 74.28)")
    assert any(line.startswith("Bracket 1 of 2: 2 rungs, ") for line in lines)
    assert lines[-1].startswith("Total: 64 trials, ")


@needs_nasbench201
def test_the_budget_stops_the_simulation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path / "random.yaml", """\
        searcher: {name: random, max_length: {epochs: 200}, max_trials: 100, max_concurrent_trials: 2}
        """)
    assert hpt(config, "--benchmark", "nasbench201", "--workers", "2", "--budget", "1000") == 0
    out = capsys.readouterr().out
    assert "the budget ran out after 1000 s (17 min) of simulated time; 2 workers, busy 100% of the time" in out
    assert "    10 | 200 epochs" in out  # 2 workers x 5 full trainings of 200 s


def test_a_users_own_benchmark_as_module_and_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "my_curves.py", USER_BENCHMARK)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = write(tmp_path / "grid.yaml", """\
        searcher: {name: grid, max_length: {epochs: 8}, max_concurrent_trials: 5}
        hyperparameters:
          x: {type: double, minval: -1.0, maxval: 1.0, count: 5}
        """)
    assert hpt(config, "--benchmark", "my_curves:Parabola", "--task", "wide", "--workers", "5") == 0
    out = capsys.readouterr().out
    assert "the search ended after 480 s (8 min) of simulated time; 5 workers, busy 100% of the time" in out
    assert "best loss 0.125, trial 3 after 8 epochs at 480 s (8 min) (x=0)" in out
    assert "regret 0 (best known 0.125)" in out


def test_a_config_that_does_not_fit_the_benchmark_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                    ) -> None:
    write(tmp_path / "my_curves.py", USER_BENCHMARK)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = write(tmp_path / "bad.yaml", "searcher: {name: random, max_length: 8, max_trials: 2}\n")
    from hpt_core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"searcher.max_length: the parabola benchmark measures lengths in epochs"):
        hpt(config, "--benchmark", "my_curves:Parabola")


@pytest.mark.parametrize("argv, message", [
    (["--benchmark", "nb301"], "error: no benchmark 'nb301'; built in: lcbench, nasbench201"),
    (["--benchmark", "nasbench201", "--task", "mnist"], "error: the nasbench201 benchmark has no task 'mnist'"),
    (["--benchmark", "nasbench201", "--data", "/nonexistent"],
     "error: the nasbench201 benchmark data is missing: no file /nonexistent/nasbench201/"),
])
def test_settings_the_simulation_cannot_use_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       argv: list[str], message: str) -> None:
    config = write(tmp_path / "random.yaml", "searcher: {name: random, max_length: {epochs: 200}, max_trials: 2}\n")
    assert hpt(config, *argv) == 2
    assert capsys.readouterr().err.startswith(message)
