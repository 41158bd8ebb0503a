"""A Lightning trial forked by a preloaded interpreter: torch imported with one thread per trial starts no thread,
so the interpreter forks each trial and stays; the trial trains as a cold one does."""

import json
import sys
import time

from hpt_core.executors import LaunchSpec, LocalExecutor

TRIAL = """
import json, os, sys
import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

class Model(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
    def training_step(self, batch, index):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

data = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False)
trainer.fit(Model(), DataLoader(data, batch_size=16))
with open(os.path.join(os.environ["RECORDS"], os.environ["HPT_TRIAL_ID"]), "w") as handle:
    json.dump({"epochs": trainer.current_epoch, "threads": torch.get_num_threads(), "pid": os.getpid(),
               "pgid": os.getpgid(0)}, handle)
"""

TIMEOUT_SECONDS = 300


def run_trial(executor, tmp_path, trial_id):
    executor.launch(LaunchSpec(trial_id=trial_id, attempt=1, command=f"{sys.executable} train.py",
                               env={"HPT_TRIAL_ID": str(trial_id), "RECORDS": str(tmp_path)},
                               log_path=str(tmp_path / f"trial-{trial_id}.log")))
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not (exits := executor.poll()):
        assert time.monotonic() < deadline, f"trial {trial_id} never ended"
        time.sleep(0.05)
    return exits[0].returncode, json.loads((tmp_path / str(trial_id)).read_text())


def test_a_lightning_trial_with_one_thread_is_forked_and_trains_as_a_cold_one(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "train.py").write_text(TRIAL)
    executor = LocalExecutor(tmp_path / "experiment", model_dir, max_concurrent=2, cpu_count=2,
                             preload=["torch", "lightning"])
    try:
        cold = run_trial(executor, tmp_path, 1)
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while executor.preloading():
            assert time.monotonic() < deadline, "the interpreters never finished preloading"
            time.sleep(0.1)
        forked = run_trial(executor, tmp_path, 2)
        assert executor.start_notes[2] == "warm start: preloaded torch, lightning (forked)"
        assert cold[0] == forked[0] == 0
        assert {key: cold[1][key] for key in ("epochs", "threads")} == \
               {key: forked[1][key] for key in ("epochs", "threads")} == {"epochs": 2, "threads": 1}
        assert forked[1]["pgid"] == forked[1]["pid"]
    finally:
        executor.shutdown(grace_seconds=1)
