"""A small plain-Python trial whose behaviour the tests choose through hyperparameters.

It "trains" epoch by epoch (the loss falls at a rate set by `quality`), reports, checkpoints a
JSON state, and writes its own log of every report and checkpoint to $TRIAL_LOG (JSON lines),
so the tests can compare what the trial did with what storage holds. $METRIC_NAMES (a JSON list)
adds metrics of those names to every report: the name at index i is the report's loss (or epoch) + i.
Behaviours "batched" (each epoch's batches reported in one `report_training_many` call) and "nan_training"
(a NaN training loss at epoch 2, which the report call refuses) try the reporting API.
"""

import json
import math
import os
import signal
import time

import hpt_core

ctx = hpt_core.init()
behaviour = ctx.get_hparam("behaviour", "normal")
quality = ctx.get_hparam("quality", 1.0)
attempt = int(os.environ.get("HPT_ATTEMPT", "0"))
extra_names = json.loads(os.environ.get("METRIC_NAMES", "[]"))


def with_extra_names(metrics, value):
    return {**metrics, **{name: value + index for index, name in enumerate(extra_names)}}


def log(event, **fields):
    with open(os.environ["TRIAL_LOG"], "a") as handle:
        handle.write(json.dumps({"event": event, "trial_id": ctx.trial_id, "attempt": attempt, "pid": os.getpid(),
                                 "time": time.time(), **fields}) + "\n")


log("start", restore=None if ctx.restore is None else {
    "checkpoint_id": ctx.restore.checkpoint_id, "epochs": ctx.restore.epochs, "warm_start": ctx.restore.warm_start,
    "state": json.loads(open(os.path.join(ctx.restore.path, "state.json")).read())},
    **({"environment": dict(os.environ)} if os.environ.get("RECORD_ENVIRONMENT") else {}))
if behaviour == "invalid":
    raise hpt_core.InvalidHP("this configuration cannot train")
if behaviour == "hang":
    time.sleep(3600)
if behaviour == "bad_restore" and ctx.restore is not None:
    raise RuntimeError("this script cannot load its own checkpoints")

epoch, weight = 0, 0.0
if ctx.restore is not None:
    weight = json.loads(open(os.path.join(ctx.restore.path, "state.json")).read())["weight"]
    if not ctx.restore.warm_start:
        epoch = ctx.restore.epochs

for target in ctx.targets():
    while epoch < target and not ctx.should_stop():
        time.sleep(float(os.environ.get("EPOCH_SECONDS", "0.02")))
        epoch += 1
        weight += quality
        if behaviour == "die" or (behaviour == "die_once" and attempt == 1 and epoch == 2):
            log("dying", epochs=epoch)
            os.kill(os.getpid(), signal.SIGKILL)
        metrics = with_extra_names({"loss": 1.0 / (1.0 + weight), "<b>odd name</b>": epoch}, epoch)
        if behaviour == "nan_training" and epoch == 2:
            metrics["loss"] = float("nan")
        if behaviour == "batched":  # each batch's loss, and the epoch's metrics, in one call
            steps = [({"batch_loss": 1.0 / (1.0 + weight + step)}, epoch * 10 - 10 + step, epoch - 1)
                     for step in range(1, 10)]
            ctx.report_training_many([*steps, (metrics, epoch * 10, epoch)])
            for step_metrics, batches, epochs in steps:
                log("report", kind="training", metrics=step_metrics, batches=batches, epochs=epochs)
        else:
            ctx.report_training(metrics, batches=epoch * 10, epochs=epoch)
        log("report", kind="training", metrics=metrics, batches=epoch * 10, epochs=epoch)
        if behaviour == "stop" and epoch >= 2:
            ctx.set_stop_requested(True)
        if ctx.get_hparam("checkpoint_each_epoch", False) and not ctx.should_stop():
            with ctx.save_checkpoint(batches=epoch * 10, epochs=epoch) as path:
                (path / "state.json").write_text(json.dumps({"weight": weight, "epochs": epoch}))
            log("checkpoint", epochs=epoch, weight=weight)
    value = float("nan") if behaviour == "nan" else 1.0 / (1.0 + weight)
    metrics = with_extra_names({"val_loss": value, "accuracy": 1.0 - (0 if math.isnan(value) else value)}, value)
    if behaviour == "no_metric":
        metrics.pop("val_loss")
    ctx.report_validation(metrics, batches=epoch * 10, epochs=epoch)
    log("report", kind="validation", metrics=metrics, batches=epoch * 10, epochs=epoch)
    if ctx.should_checkpoint():
        with ctx.save_checkpoint(batches=epoch * 10, epochs=epoch) as path:
            (path / "state.json").write_text(json.dumps({"weight": weight, "epochs": epoch}))
        log("checkpoint", epochs=epoch, weight=weight)
log("exit", epochs=epoch)
