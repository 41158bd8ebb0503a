"""A plain-Python trial for the dashboard's tests.

Its loss falls at a rate set by `lr`; it reports training and validation metrics every epoch (10
batches), prints a line per epoch to its log, and saves a checkpoint (a JSON state) when asked, or
every epoch with `checkpoint_each_epoch`. Each epoch takes `epoch_seconds`. With `report_as` set, the
validation loss is also reported under that name (a hostile metric name, for the escaping tests).
"""

import json
import time
from pathlib import Path

import hpt_core

ctx = hpt_core.init()
hparams = ctx.get_hparams()
rate = float(hparams.get("lr", 0.1))
epoch_seconds = float(hparams.get("epoch_seconds", 0.0))
report_as = hparams.get("report_as")

epoch, weight = 0, 0.0
if ctx.restore is not None:
    weight = json.loads((Path(ctx.restore.path) / "state.json").read_text())["weight"]
    if not ctx.restore.warm_start:
        epoch = ctx.restore.epochs
print(f"trial {ctx.trial_id} starts at epoch {epoch} with {json.dumps(hparams)}", flush=True)

for target in ctx.targets():
    while epoch < target and not ctx.should_stop():
        time.sleep(epoch_seconds)
        epoch += 1
        weight += rate
        loss = 1.0 / (1.0 + weight)
        ctx.report_training({"loss": loss, "weight": weight}, batches=epoch * 10, epochs=epoch)
        validation = {"val_loss": loss, "accuracy": 1.0 - loss}
        if report_as:
            validation[report_as] = loss
        ctx.report_validation(validation, batches=epoch * 10, epochs=epoch)
        print(f"epoch {epoch}: val_loss {loss:.6f}", flush=True)
        if hparams.get("checkpoint_each_epoch") or ctx.should_checkpoint():
            with ctx.save_checkpoint(batches=epoch * 10, epochs=epoch) as path:
                (path / "state.json").write_text(json.dumps({"weight": weight, "epochs": epoch}))
                (path / "weights.bin").write_bytes(bytes(range(256)) * (epoch + 1))
print(f"trial {ctx.trial_id} exits at epoch {epoch}", flush=True)
