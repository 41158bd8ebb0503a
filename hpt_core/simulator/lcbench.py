"""LCBench through the YAHPO Gym surrogate (`yahpo/lcbench`), evaluated with onnxruntime alone.

The surrogate is a neural network trained on LCBench's learning curves (Zimmer et al. 2021;
YAHPO Gym, Pfisterer et al. 2022, Apache-2.0): for one of 34 OpenML tasks, 7 hyperparameters
and an epoch in 1..52 it predicts the validation and test metrics and the training time so far.
A whole curve (52 epochs) is computed in one call and kept, so each configuration costs one call.

- The metric is `val_accuracy` (in %, larger is better); the others the surrogate predicts are
  reported too (`val_cross_entropy`, `val_balanced_accuracy`, `test_cross_entropy`,
  `test_balanced_accuracy`).
- Simulated time is the surrogate's `time` output (seconds since the start of training), made
  non-decreasing along the curve (a running maximum): the surrogate does not promise that.
- `batch_size` and `max_units` are log-scaled integers in LCBench; hpt has no log-int type, so they
  are `log` hyperparameters with base 2, rounded to the nearest integer for the lookup.
- The best known value is the maximum `val_accuracy` that YAHPO Gym recorded for the task over
  0.5 million random points (`global_statistics/instance_target_statistics.csv`).
"""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np

from hpt_core.simulator.benchmarks import Benchmark, Evaluation, SimulationError, require_file

EPOCHS = 52
TARGETS = ("time", "val_accuracy", "val_cross_entropy", "val_balanced_accuracy", "test_cross_entropy",
           "test_balanced_accuracy")
LCBENCH_TASKS = ("167168", "189873", "189906", "3945", "7593", "34539", "126025", "126026", "126029", "146212",
                 "167104", "167149", "167152", "167161", "167181", "167184", "167185", "167190", "167200",
                 "167201", "168329", "168330", "168331", "168335", "168868", "168908", "168910", "189354",
                 "189862", "189865", "189866", "189905", "189908", "189909")
HYPERPARAMETERS = {
    "batch_size": {"type": "log", "base": 2.0, "minval": 4.0, "maxval": 9.0},
    "learning_rate": {"type": "log", "minval": -4.0, "maxval": -1.0},
    "momentum": {"type": "double", "minval": 0.1, "maxval": 0.99},
    "weight_decay": {"type": "double", "minval": 1e-5, "maxval": 0.1},
    "num_layers": {"type": "int", "minval": 1, "maxval": 5},
    "max_units": {"type": "log", "base": 2.0, "minval": 6.0, "maxval": 10.0},
    "max_dropout": {"type": "double", "minval": 0.0, "maxval": 1.0},
}
_INPUT_ORDER = ("batch_size", "learning_rate", "momentum", "weight_decay", "num_layers", "max_units", "max_dropout")
_ROUNDED = ("batch_size", "num_layers", "max_units")


class LCBench(Benchmark):
    """YAHPO Gym's LCBench surrogate: 7 hyperparameters, epochs 1..52, a simulated time per epoch.

    For example, `LCBench("167168").lookup(hparams, 52).metrics["val_accuracy"]` is 51.78 for
    batch_size 64, learning_rate 1e-3, momentum 0.9, weight_decay 1e-4, num_layers 3,
    max_units 256 and max_dropout 0.1.
    """

    name: ClassVar[str] = "lcbench"
    tasks: ClassVar[tuple[str, ...]] = LCBENCH_TASKS
    metric: ClassVar[str] = "val_accuracy"
    smaller_is_better: ClassVar[bool] = False

    def __init__(self, task: str | None = None, data_dir: str | Path | None = None) -> None:
        super().__init__(task, data_dir)
        self.folder = self.data_dir / "yahpo" / "lcbench"
        self._session = _session(require_file(self.folder / "model.onnx", self.name))
        encoding = json.loads(require_file(self.folder / "encoding.json", self.name).read_text())
        self._task_code = int(encoding["OpenML_task_id"][self.task])
        self._curves: dict[tuple[float, ...], np.ndarray] = {}

    def hyperparameters(self) -> dict[str, Any]:
        return {name: dict(spec) for name, spec in HYPERPARAMETERS.items()}

    def lengths(self) -> tuple[int, ...]:
        return tuple(range(1, EPOCHS + 1))

    def evaluate(self, hparams: Mapping[str, Any], length: int) -> Evaluation:
        row = self._curve(hparams)[length - 1]
        return Evaluation(dict(zip(TARGETS[1:], map(float, row[1:]))), elapsed=float(row[0]))

    def best_value(self) -> float:
        return _best_known(require_file(self.data_dir / "yahpo" / "global_statistics" /
                                        "instance_target_statistics.csv", self.name), self.task)

    def _curve(self, hparams: Mapping[str, Any]) -> np.ndarray:
        """The 52 x 6 predicted curve (time made non-decreasing), computed once per configuration."""
        key = _inputs(hparams)
        curve = self._curves.get(key)
        if curve is None:
            x_cont = np.array([[epoch, *key] for epoch in range(1, EPOCHS + 1)], dtype=np.float32)
            x_cat = np.full((EPOCHS, 1), self._task_code, dtype=np.int32)
            curve = self._session.run(None, {"x_cat": x_cat, "x_cont": x_cont})[0].astype(np.float64)
            curve[:, 0] = np.maximum.accumulate(np.maximum(curve[:, 0], 0.0))
            self._curves[key] = curve
        return curve


def _inputs(hparams: Mapping[str, Any]) -> tuple[float, ...]:
    missing = [name for name in _INPUT_ORDER if name not in hparams]
    if missing:
        raise SimulationError(f"the lcbench benchmark needs the hyperparameters {', '.join(_INPUT_ORDER)}; "
                              f"missing: {', '.join(missing)}")
    return tuple(float(round(hparams[name])) if name in _ROUNDED else float(hparams[name]) for name in _INPUT_ORDER)


@functools.lru_cache(maxsize=None)
def _session(model: Path) -> Any:
    """One onnxruntime session per model file and process, on one thread (the CPU is shared)."""
    try:
        import onnxruntime
    except ImportError:
        raise SimulationError("the lcbench benchmark needs onnxruntime: pip install -e '.[benchmarks]' "
                              "(or onnxruntime==1.32.0)") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


@functools.lru_cache(maxsize=None)
def _best_known(statistics: Path, task: str) -> float:
    with statistics.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if (row["scenario"], row["instance"], row["metric"], row["statistic"]) == \
                    ("lcbench", task, "val_accuracy", "max"):
                return float(row["value"])
    raise SimulationError(f"{statistics} has no maximum val_accuracy for lcbench task {task}")
