"""One real two-node Ray cluster on this machine for the whole session, and helpers to run experiments on it.

Each node has its own temporary directory (where Ray unpacks the model directory it ships), its own
custom resource (`node_a`, `node_b`), one CPU and a small object store.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import hpt_core
from hpt_core.runner import build_controller, create_experiment
from hpt_core.storage import Storage

# conftest.py itself is not collected for doctests (it has none): pytest would import it under the module
# name "conftest" that another folder's conftest.py may hold by then.
collect_ignore_glob = ["model/*", "conftest.py"]

MODEL_DIR = Path(__file__).parent / "model"
OBJECT_STORE_BYTES = 80 * 1024 * 1024
EPOCH_SECONDS = "0.1"


@dataclass
class RayCluster:
    """The session's cluster: its address and each node's id and temporary directory, by name."""

    cluster: Any
    root: Path
    node_ids: dict[str, str] = field(default_factory=dict)
    temp_dirs: dict[str, Path] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return self.cluster.address

    def add_node(self, name: str) -> Any:
        """A new node with one CPU, the custom resource `name` and the temporary directory `<root>/<name>`."""
        node = self.cluster.add_node(num_cpus=1, resources={name: 1}, object_store_memory=OBJECT_STORE_BYTES,
                                     temp_dir=str(self.root / name))
        self.node_ids[name], self.temp_dirs[name] = node.node_id, self.root / name
        return node

    def node_named(self, node_id: str) -> str:
        return next(name for name, known in self.node_ids.items() if known == node_id)


@pytest.fixture(scope="session")
def ray_temp_root():
    """A temporary root of the cluster's own, made before Ray starts, and `RAY_TMPDIR` pointing at it.

    Ray writes its address file to `<temp root>/ray/` (temp root: `$RAY_TMPDIR`, else `$TMPDIR`, else /tmp)
    without creating that folder, so on a machine that never ran Ray it must be made first. The root lies
    directly under /tmp whatever `$TMPDIR` is: a node's socket paths under it must fit in 107 bytes.
    """
    root = Path(tempfile.mkdtemp(prefix="hpt-ray-", dir="/tmp"))
    previous = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = str(root)
    (root / "ray").mkdir()
    yield root
    if previous is None:
        del os.environ["RAY_TMPDIR"]
    else:
        os.environ["RAY_TMPDIR"] = previous
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster(ray_temp_root):
    cluster_utils = pytest.importorskip("ray.cluster_utils", reason="Ray is not installed (pip install 'hpt[ray]')")
    import ray

    root = ray_temp_root
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"node_a": 1}, "object_store_memory": OBJECT_STORE_BYTES,
        "temp_dir": str(root / "node_a"), "include_dashboard": False})
    session = RayCluster(cluster, root, {"node_a": cluster.head_node.node_id}, {"node_a": root / "node_a"})
    session.add_node("node_b")
    yield session
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture
def model_dir(tmp_path):
    """A fresh copy of the tests' model directory (the trial script), in `tmp_path/model`."""
    return Path(shutil.copytree(MODEL_DIR, tmp_path / "model"))


@dataclass
class Run:
    """A finished experiment: its storage, id, final state and what its trials logged."""

    storage: Storage
    experiment_id: int
    state: str
    log: list[dict[str, Any]]

    @property
    def trials(self):
        return self.storage.list_trials(self.experiment_id)

    def outcome(self) -> list[tuple]:
        """Each trial's request, hyperparameters, end and validations: what must not depend on the executor."""
        return [(trial.request_id, trial.hparams, trial.state, trial.end_reason, trial.length_done,
                 trial.parent_request_id,
                 [(record.epochs, record.metrics) for record in self.storage.metrics(trial_id=trial.id,
                                                                                     kind="validation")])
                for trial in self.trials]

    def trial_output(self, trial_id: int) -> str:
        directory = self.storage.get_experiment(self.experiment_id).experiment_dir
        return (Path(directory) / "trials" / str(trial_id) / "output.log").read_text()


@pytest.fixture
def experiment(tmp_path, monkeypatch):
    """`experiment(searcher, hyperparameters, executor=..., **fields)` runs an experiment of the tests' trial.

    On Ray, the model directory is a copy that is moved away once the controller is built (the experiment
    is submitted), so trials can only run the code that Ray shipped.
    """
    runs = iter(range(1, 100))

    def run(searcher, hyperparameters, executor=None, during=None, **fields):
        number = next(runs)
        monkeypatch.setenv("HPT_HOME", str(tmp_path / f"home-{number}"))
        model_dir = tmp_path / f"model-{number}"
        shutil.copytree(MODEL_DIR, model_dir)
        trial_log = tmp_path / f"trial-log-{number}.jsonl"
        config = hpt_core.load_config({
            "entrypoint": f"{sys.executable} trial.py",
            "max_restarts": 2,
            "reproducibility": {"experiment_seed": 7},
            "environment": {"variables": {"TRIAL_LOG": str(trial_log), "EPOCH_SECONDS": EPOCH_SECONDS,
                                          **fields.pop("variables", {})}},
            "searcher": {"metric": "val_loss", **searcher},
            "hyperparameters": hyperparameters,
            **({"executor": executor} if executor else {}),
            **fields,
        })
        storage = Storage(f"sqlite:///{tmp_path}/hpt-{number}.db")
        experiment_id = create_experiment(config, model_dir, storage)
        controller = build_controller(storage, experiment_id)
        if config.executor.type == "ray":
            model_dir.rename(tmp_path / f"moved-away-{number}")
        if during is not None:
            controller.on_tick = during
        state = controller.run()
        log = [json.loads(line) for line in trial_log.read_text().splitlines()] if trial_log.exists() else []
        return Run(storage, experiment_id, state, log)

    return run
