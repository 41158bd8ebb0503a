"""One real two-node Ray cluster on this machine for the whole session, and helpers to run experiments on it.

Each node has its own temporary directory (where Ray unpacks the model directory it ships), its own
custom resource (`node_a`, `node_b`), one CPU and a small object store.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from real_experiments import ExperimentFolder

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
    cluster_utils = pytest.importorskip("ray.cluster_utils", reason="Ray is not installed (pip install -e '.[ray]')")
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


@pytest.fixture
def experiment(tmp_path):
    """`experiment(searcher, hyperparameters, executor=..., during=..., variables=..., **fields)` runs an experiment
    of the tests' trial (2 restarts, seed 7, epochs of EPOCH_SECONDS) in a folder of its own, `tmp_path/run-N` for
    the test's N-th experiment, and returns its `ExperimentRun`; `during(controller)` is called on every turn of the
    controller's loop.

    On Ray, the model directory is a copy that is moved away once the controller is built (the experiment
    is submitted), so trials can only run the code that Ray shipped.
    """
    runs = iter(range(1, 100))

    def run(searcher, hyperparameters, executor=None, during=None, **fields):
        experiments = ExperimentFolder(tmp_path / f"run-{next(runs)}", MODEL_DIR,
                                       variables={"EPOCH_SECONDS": EPOCH_SECONDS},
                                       defaults={"max_restarts": 2, "reproducibility": {"experiment_seed": 7}})
        on_ray = executor is not None and executor.get("type") == "ray"
        return experiments.run(searcher, hyperparameters, on_tick=during, move_model_dir_away=on_ray,
                               **({"executor": executor} if executor else {}), **fields)

    return run
