"""A Lightning trial on scikit-learn's digits whose behaviour the tests choose through hyperparameters.

Its training is a user's ordinary script with `HptCallback` added; a `Probe` callback after it writes
what the Trainer did (per rank) to $TRIAL_LOG as JSON lines, so the tests can compare that with what
storage holds. Hyperparameters: `lr`, `package` (lightning | pytorch_lightning), `strategy` and
`devices`, `check_val_every_n_epoch`, `behaviour` (normal | early_stop | die_once | invalid | slow | nan_loss).

The module logs as Lightning's documentation tells DDP users to: epoch-level metrics with
`sync_dist=True`, step-level ones too, and torchmetrics objects. Each `*marker*` metric logs the
epoch plus the process's rank, so its value tells the epoch it was logged in and whether it was
reduced over the ranks (their mean: epoch + 0.5 with two processes, epoch alone with one).
"""

import json
import os
import signal
import time

import torch
import torchmetrics
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

import hpt_core
from hpt_lightning import HptCallback

ctx = hpt_core.init()
behaviour = ctx.get_hparam("behaviour", "normal")
attempt = int(os.environ.get("HPT_ATTEMPT", "0"))
if ctx.get_hparam("package", "lightning") == "pytorch_lightning":
    import pytorch_lightning as L
    from pytorch_lightning.callbacks import EarlyStopping
else:
    import lightning.pytorch as L
    from lightning.pytorch.callbacks import EarlyStopping

torch.set_num_threads(1)


def log(event, trainer=None, **fields):
    if trainer is not None:
        fields.update(rank=trainer.global_rank, epoch=trainer.current_epoch, global_step=trainer.global_step)
    with open(os.environ["TRIAL_LOG"], "a") as handle:
        handle.write(json.dumps({"event": event, "trial_id": ctx.trial_id, "attempt": attempt, "pid": os.getpid(),
                                 "time": time.time(), **fields}) + "\n")


def fingerprint(state_dict):
    return [float(tensor.double().sum()) for tensor in state_dict.values()]


class Classifier(L.LightningModule):
    def __init__(self, lr):
        super().__init__()
        self.lr = lr
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
        self.train_marker_metric = torchmetrics.MeanMetric()
        self.val_marker_metric = torchmetrics.MeanMetric()
        self.val_accuracy = torchmetrics.classification.MulticlassAccuracy(num_classes=10, average="micro")

    def marker(self):
        return torch.tensor(float(self.current_epoch + self.global_rank))

    def training_step(self, batch, batch_idx):
        if behaviour == "die_once" and attempt == 1 and self.current_epoch == 1 and batch_idx == 2:
            log("dying", self.trainer)
            os.kill(os.getpid(), signal.SIGKILL)
        if behaviour == "slow":
            time.sleep(0.05)
        features, labels = batch
        loss = torch.nn.functional.cross_entropy(self.net(features), labels)
        logged_loss = loss * float("nan") if behaviour == "nan_loss" else loss  # a diverged training loss
        self.log("loss", logged_loss, on_step=False, on_epoch=True, sync_dist=True)
        self.log("train_marker", self.marker(), on_step=False, on_epoch=True, sync_dist=True)
        self.log("step_marker", self.marker(), on_step=True, on_epoch=False, sync_dist=True)
        self.train_marker_metric.update(self.marker())
        self.log("train_marker_metric", self.train_marker_metric, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        features, labels = batch
        logits = self.net(features)
        self.log("val_loss", torch.nn.functional.cross_entropy(logits, labels), sync_dist=True)
        self.val_accuracy.update(logits, labels)
        self.log("val_accuracy", self.val_accuracy)
        self.log("val_marker", self.marker(), sync_dist=True)
        self.val_marker_metric.update(self.marker())
        self.log("val_marker_metric", self.val_marker_metric)

    def configure_optimizers(self):
        if behaviour == "invalid":
            raise hpt_core.InvalidHP("this learning rate cannot train")
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


class Probe(L.Callback):
    def __init__(self, hpt):
        self.hpt = hpt

    def on_train_start(self, trainer, pl_module):
        restore = self.hpt.restore
        log("train_start", trainer, batches=trainer.fit_loop.epoch_loop.total_batch_idx + 1,
            lr=trainer.optimizers[0].param_groups[0]["lr"], weights=fingerprint(pl_module.state_dict()),
            seed=torch.initial_seed(), restore=None if restore is None else {
                "checkpoint_id": restore.checkpoint_id, "epochs": restore.epochs, "batches": restore.batches,
                "warm_start": restore.warm_start})

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            log("validation", trainer, val_loss=float(trainer.callback_metrics["val_loss"]))

    def on_train_epoch_end(self, trainer, pl_module):
        log("epoch_end", trainer, lr=trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_end(self, trainer, pl_module):
        log("train_end", trainer, should_stop=trainer.should_stop)


def digits(rows):
    features, labels = load_digits(return_X_y=True)
    return TensorDataset(torch.tensor(features[rows] / 16.0, dtype=torch.float32), torch.tensor(labels[rows]))


def main():
    L.seed_everything(ctx.trial_seed)
    model = Classifier(lr=ctx.get_hparam("lr", 0.1))
    early_stopping = EarlyStopping("val_loss", patience=1, min_delta=100.0 if behaviour == "early_stop" else 0.0)
    hpt = HptCallback(ctx)
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=ctx.get_hparam("devices", 1),
                        strategy=ctx.get_hparam("strategy", "auto"), callbacks=[hpt, early_stopping, Probe(hpt)],
                        check_val_every_n_epoch=ctx.get_hparam("check_val_every_n_epoch", 1),
                        limit_train_batches=4, limit_val_batches=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, DataLoader(digits(slice(0, 1200)), batch_size=64, shuffle=True),
                DataLoader(digits(slice(1200, None)), batch_size=64), ckpt_path=hpt.ckpt_path)
    log("fit_returned", trainer)


if __name__ == "__main__":
    main()
