"""NAS-Bench-201 tables (`nasbench201`): 6 categorical choices, results after 12 and after 200 epochs.

The cell has 6 edges, each one of 5 operations (15,625 architectures), trained on CIFAR-10,
CIFAR-100 or ImageNet16-120 (Dong & Yang, ICLR 2020). The tables in the data folder hold, per
architecture, the accuracies at the end of a 12-epoch and of a 200-epoch training, and nothing in
between, so a search can only ask for those two lengths (e.g. adaptive ASHA with two rungs:
`max_length: {epochs: 200}`, `divisor: 16` gives rungs of 12 and 200 epochs).

Approximations, which every search method simulated on it shares:

- Time: the tables hold no training times, so the cost is proportional to epochs, one simulated
  second per epoch for every architecture (the clock counts epochs).
- The searcher metric is `test_accuracy` (in %, larger is better) at both lengths: the 200-epoch
  table has no validation accuracy. At 12 epochs `val_accuracy` is reported too; at 200,
  `train_accuracy`. The benchmark therefore measures how fast a search finds a good
  architecture, not how well its choice generalises.
- NAS-Bench-201 trained the 12- and 200-epoch results as separate runs (each with its own
  learning-rate schedule); here a trial promoted from 12 to 200 epochs continues, paying the 188
  remaining epochs.
- The best known value is the table's maximum 200-epoch test accuracy for the task, exact.
"""

from __future__ import annotations

import csv
import functools
import gzip
from pathlib import Path
from typing import Any, ClassVar, Mapping

from hpt_core.simulator.benchmarks import Benchmark, Evaluation, SimulationError, require_file

OPERATIONS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = tuple(f"edge{index}" for index in range(6))
SECONDS_PER_EPOCH = 1.0
_TASK_COLUMNS = {"cifar10": "cifar10", "cifar100": "cifar100", "ImageNet16-120": "imagenet"}

Architecture = tuple[str, ...]
Table = dict[Architecture, dict[str, float]]


class NASBench201(Benchmark):
    """NAS-Bench-201: 6 categorical edges, results at 12 and 200 epochs, time proportional to epochs.

    For example, `NASBench201("cifar10").lookup(hparams, 200).metrics["test_accuracy"]` is 93.74
    for the cell with nor_conv_3x3 on every edge.
    """

    name: ClassVar[str] = "nasbench201"
    tasks: ClassVar[tuple[str, ...]] = tuple(_TASK_COLUMNS)
    metric: ClassVar[str] = "test_accuracy"
    smaller_is_better: ClassVar[bool] = False

    def __init__(self, task: str | None = None, data_dir: str | Path | None = None) -> None:
        super().__init__(task, data_dir)
        folder = self.data_dir / "nasbench201"
        self._tables = {
            12: _table_12(require_file(folder / "nb201_hp12_val_test.csv.gz", self.name), _TASK_COLUMNS[self.task]),
            200: _table_200(require_file(folder / "nb201_hp200_train_test.csv.gz", self.name), self.task),
        }

    def hyperparameters(self) -> dict[str, Any]:
        return {edge: {"type": "categorical", "vals": list(OPERATIONS)} for edge in EDGES}

    def lengths(self) -> tuple[int, ...]:
        return (12, 200)

    def evaluate(self, hparams: Mapping[str, Any], length: int) -> Evaluation:
        architecture = _architecture(hparams)
        return Evaluation(dict(self._tables[length][architecture]), elapsed=SECONDS_PER_EPOCH * length)

    def best_value(self) -> float:
        return max(row["test_accuracy"] for row in self._tables[200].values())

    def median_full_time(self) -> float:
        return SECONDS_PER_EPOCH * self.max_length


def _architecture(hparams: Mapping[str, Any]) -> Architecture:
    problems = [f"{edge}={hparams.get(edge)!r}" for edge in EDGES if hparams.get(edge) not in OPERATIONS]
    if problems:
        raise SimulationError(f"the nasbench201 benchmark needs {', '.join(EDGES)}, each one of "
                              f"{', '.join(OPERATIONS)}; got {', '.join(problems)}")
    return tuple(hparams[edge] for edge in EDGES)


@functools.lru_cache(maxsize=None)
def _table_12(path: Path, column: str) -> Table:
    with gzip.open(path, "rt", newline="") as handle:
        return {
            tuple(row[edge] for edge in EDGES): {"test_accuracy": float(row[f"{column}-test"]),
                                                 "val_accuracy": float(row[f"{column}-val"])}
            for row in csv.DictReader(handle)
        }


@functools.lru_cache(maxsize=None)
def _table_200(path: Path, task: str) -> Table:
    with gzip.open(path, "rt", newline="") as handle:
        return {
            _edges_of(row["cellstr"]): {"test_accuracy": float(row["test_acc"]),
                                        "train_accuracy": float(row["train_acc"])}
            for row in csv.DictReader(handle) if row["task"] == task
        }


def _edges_of(cell: str) -> Architecture:
    """The operations of an NB201 cell string `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`, in order."""
    operations = tuple(part.split("~")[0] for part in cell.split("|") if "~" in part)
    if len(operations) != len(EDGES):
        raise SimulationError(f"not a NAS-Bench-201 cell string: {cell!r}")
    return operations
