"""A tiny plain-Python trial for the Ray tests: it records where it ran and can kill its own Ray worker.

Each epoch sleeps EPOCH_SECONDS; the loss falls at a rate set by `quality`. Every start, report,
checkpoint and exit is appended to $TRIAL_LOG (JSON lines) with the Ray node, working directory and
attempt, so the tests can see where trials ran and from which checkpoint they restarted.
"""

import json
import os
import signal
import time

import hpt_core

ctx = hpt_core.init()
quality = ctx.get_hparam("quality", 1.0)
behaviour = ctx.get_hparam("behaviour", "normal")
attempt = int(os.environ.get("HPT_ATTEMPT", "0"))


def log(event, **fields):
    with open(os.environ["TRIAL_LOG"], "a") as handle:
        handle.write(json.dumps({"event": event, "trial_id": ctx.trial_id, "attempt": attempt,
                                 "node": os.environ.get("HPT_RAY_NODE_ID"), "cwd": os.getcwd(), "pid": os.getpid(), "pgid": os.getpgrp(),
                                 "parent_pid": os.getppid(), "time": time.time(), **fields}) + "\n")


def ray_worker_pid():
    """The Ray worker process this trial runs under (the first ancestor whose title starts with `ray::`)."""
    pid = os.getppid()
    while pid > 1:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            if handle.read().startswith(b"ray::"):
                return pid
        with open(f"/proc/{pid}/stat") as handle:
            pid = int(handle.read().rpartition(")")[2].split()[1])
    raise RuntimeError("this trial does not run under a Ray worker")


epoch, weight = 0, 0.0
restored = None
if ctx.restore is not None:
    with open(os.path.join(ctx.restore.path, "state.json")) as handle:
        restored = json.load(handle)
    weight = restored["weight"]
    if not ctx.restore.warm_start:
        epoch = ctx.restore.epochs
log("start", restore=restored, restore_epochs=None if ctx.restore is None else ctx.restore.epochs)

for target in ctx.targets():
    while epoch < target and not ctx.should_stop():
        time.sleep(float(os.environ.get("EPOCH_SECONDS", "0.1")))
        epoch += 1
        weight += quality
        ctx.report_training({"loss": 1.0 / (1.0 + weight)}, batches=epoch * 10, epochs=epoch)
        if behaviour in ("checkpoint_each_epoch", "kill_worker_once") and not ctx.should_stop():
            with ctx.save_checkpoint(batches=epoch * 10, epochs=epoch) as path:
                (path / "state.json").write_text(json.dumps({"weight": weight, "epochs": epoch}))
            log("checkpoint", epochs=epoch)
        if behaviour == "kill_worker_once" and attempt == 1 and epoch == 2:
            log("killing_worker", worker_pid=ray_worker_pid())
            os.kill(ray_worker_pid(), signal.SIGKILL)
            time.sleep(60)  # the worker's death takes this process with it
        if behaviour == "wait_on_doomed_node" and os.environ["HPT_RAY_NODE_ID"] == os.environ["DOOMED_NODE"] \
                and epoch == 2:
            with ctx.save_checkpoint(batches=epoch * 10, epochs=epoch) as path:
                (path / "state.json").write_text(json.dumps({"weight": weight, "epochs": epoch}))
            log("checkpoint", epochs=epoch)
            time.sleep(60)  # the test removes this node now
    ctx.report_validation({"val_loss": 1.0 / (1.0 + weight)}, batches=epoch * 10, epochs=epoch)
    log("validation", epochs=epoch, val_loss=1.0 / (1.0 + weight))
    if ctx.should_checkpoint():
        with ctx.save_checkpoint(batches=epoch * 10, epochs=epoch) as path:
            (path / "state.json").write_text(json.dumps({"weight": weight, "epochs": epoch}))
        log("checkpoint", epochs=epoch)
log("exit", epochs=epoch)
