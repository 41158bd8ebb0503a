"""What trial code sees: hyperparameters, reporting, how far to train, checkpoints, stop requests.

A plain-Python trial::

    import hpt_core

    ctx = hpt_core.init()
    model, epoch = build(ctx.get_hparams()), 0
    if ctx.restore is not None:                      # a restart, a promotion, or a PBT child's parent
        model.load(ctx.restore.path)
        epoch = 0 if ctx.restore.warm_start else ctx.restore.epochs
    for target in ctx.targets():                     # lengths in ctx.unit ("epochs" or "batches")
        while epoch < target and not ctx.should_stop():
            model.train_one_epoch()
            epoch += 1
            ctx.report_training({"loss": model.loss}, batches=epoch * 10, epochs=epoch)
        ctx.report_validation({"val_loss": model.validate()}, batches=epoch * 10, epochs=epoch)
        if ctx.should_checkpoint():                  # the policy asks, or the trial pauses or ends
            with ctx.save_checkpoint(batches=epoch * 10, epochs=epoch) as path:
                model.save(path)

Outside an experiment, `init()` returns a local context whose hyperparameters are the defaults
of the experiment file named by `HPT_CONFIG` (or `init(config=PATH)`), so the same script runs
unchanged by hand.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import itertools
import json
import math
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from hpt_core.channel import START_VARIABLE, ChannelClient, ChannelRefused, ControllerUnreachable
from hpt_core.channel_fields import check_finite
from hpt_core.checkpoint_storage import checkpoint_directory, join, local_copy
from hpt_core.errors import PATH_SEPARATOR, ConfigError, InvalidHP, Problem

if TYPE_CHECKING:  # the trial side never imports pydantic, numpy or YAML (see docs/benchmarks.md, trial import)
    from hpt_core.config import Length

POLL_SECONDS = 1.0
FORCED_EXIT_SECONDS = 60.0
REPORTS_PER_REQUEST = 1000
"""`report_training_many` sends its reports in requests of at most this many (a request is at most 8 MiB)."""
RESTORE_FOLDER = "hpt_restore"
"""Where a trial's working directory receives checkpoints downloaded from a URL before a restore."""
_MISSING = object()


@dataclass(frozen=True)
class Restore:
    """A checkpoint to start from: this trial's latest (a resume) or a parent's (`warm_start`: counters restart)."""

    checkpoint_id: str
    path: str
    batches: int
    epochs: int
    metadata: dict[str, Any]
    warm_start: bool


class Context:
    """Hyperparameters and identity; the reporting half differs inside and outside an experiment."""

    def __init__(self, hparams: Mapping[str, Any], *, trial_id: int | None, experiment_id: int | None,
                 trial_seed: int, unit: str) -> None:
        self._hparams = dict(hparams)
        self.trial_id = trial_id
        self.experiment_id = experiment_id
        self.trial_seed = trial_seed
        self.unit = unit
        self._stop_requested = False

    def get_hparams(self) -> dict[str, Any]:
        """Every hyperparameter, nested as in the experiment file."""
        return json.loads(json.dumps(self._hparams))

    def get_hparam(self, name: str, default: Any = _MISSING) -> Any:
        """One hyperparameter by name (`"optimizer.lr"` reaches into a nested group)."""
        value: Any = self._hparams
        for part in name.split(PATH_SEPARATOR):
            if not isinstance(value, Mapping) or part not in value:
                if default is not _MISSING:
                    return default
                known = ", ".join(_dotted_names(self._hparams)) or "none"
                raise KeyError(f"no hyperparameter named {name!r}; known: {known}")
            value = value[part]
        return value

    def set_stop_requested(self, stop: bool = True) -> None:
        """Ask to end this trial after its current unit of work; it ends COMPLETED."""
        self._stop_requested = bool(stop)

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested


class TrialContext(Context):
    """The context of a trial run by an experiment's controller."""

    def __init__(self, client: ChannelClient, trial_id: int, attempt: int, start: Mapping[str, Any]) -> None:
        super().__init__(start["hparams"], trial_id=trial_id, experiment_id=start["experiment_id"],
                         trial_seed=start["seed"], unit=start["unit"])
        self._client = client
        self._identity = {"trial_id": trial_id, "attempt": attempt}
        self.request_id: int = start["request_id"]
        self._experiment_uuid: str = start["experiment_uuid"]
        self.searcher_metric: str = start["metric"]
        self.records_per_epoch: int | None = start.get("records_per_epoch")
        self.checkpoint_policy: str = start["checkpoint_policy"]
        self.max_length: int | None = start.get("max_length")
        self._checkpoint_root: str = start["checkpoint_root"]
        restore = start.get("restore")
        self.restore = _restore_locally(Restore(**restore)) if restore else None
        self._decision = start["decision"]
        self._target: int | None = start.get("target")
        self._checkpoint_requested = bool(start.get("checkpoint"))
        self._decision_seq: int = start.get("decision_seq", 0)
        wait_limit = start.get("wait_limit_seconds")
        self._give_up_at = math.inf if wait_limit is None else time.monotonic() + wait_limit
        self._report_seq = itertools.count(1)
        self._preempted = False
        self._lock = threading.Lock()
        self._poller = threading.Thread(target=self._poll_controller, name="hpt-trial-poller", daemon=True)
        self._poller.start()

    # --- how far to train -------------------------------------------------------------------

    @property
    def target_length(self) -> int | None:
        """The length (in `unit`) to train to before validating; None when the trial should end."""
        return self._target if self._decision == "continue" else None

    def targets(self) -> Iterator[int]:
        """Yield each length to train to, until the trial should save a checkpoint and exit."""
        last = None
        while not self.should_stop():
            target = self.target_length
            if target is None or target == last:
                return
            last = target
            yield target

    def should_stop(self) -> bool:
        """Cheap (no I/O): whether to stop training now, save a checkpoint and exit."""
        return self._preempted or self._stop_requested or self._decision != "continue"

    def should_checkpoint(self) -> bool:
        """Whether to save a checkpoint now: the checkpoint policy asks for one, or the trial stops."""
        return self._checkpoint_requested or self.should_stop()

    @property
    def preempted(self) -> bool:
        """The trial was asked to end (cancel, SIGTERM) or a newer attempt of it runs."""
        return self._preempted

    # --- reporting ----------------------------------------------------------------------------

    def report_training(self, metrics: Mapping[str, Any], *, batches: int, epochs: int = 0) -> None:
        """Record training metrics after `batches` batches and `epochs` epochs (in total, this trial).

        Returns once the report is stored (exactly once, whatever the retries). While the controller is away
        (killed, being resumed) the call waits and retries, with a line in the trial's output, as long as the
        trial's time limits allow; past them it raises ControllerUnreachable. A metric whose value is NaN or
        infinite raises ValueError naming it, and nothing of the report is stored."""
        self._apply(self._deliver("report", self._report_body("training", metrics, batches, epochs)))

    def report_training_many(self, reports: Iterable[Sequence[Any]]) -> None:
        """Record several training reports in one call, each `(metrics, batches)` or `(metrics, batches,
        epochs)`, in order: the way to report often (every batch) cheaply. Returns once every one is stored
        (exactly once, in one transaction with other trials' reports); a non-finite metric in any of them
        raises ValueError naming it before any is sent."""
        bodies = [self._report_body("training", *report) for report in reports]
        for start in range(0, len(bodies), REPORTS_PER_REQUEST):
            self._apply(self._deliver("reports", {"reports": bodies[start:start + REPORTS_PER_REQUEST],
                                                  "stop_requested": self._stop_requested}))

    def report_validation(self, metrics: Mapping[str, Any], *, batches: int, epochs: int = 0) -> None:
        """Record validation metrics (the searcher metric among them) like `report_training`; the reply says
        what to do next. A non-finite searcher metric is sent: it ends the trial as an error ("invalid searcher
        metric"); any other non-finite metric raises ValueError as in `report_training`."""
        self._apply(self._deliver("report", self._report_body("validation", metrics, batches, epochs)))

    def _report_body(self, kind: str, metrics: Mapping[str, Any], batches: int, epochs: int = 0) -> dict[str, Any]:
        plain = _finite_metrics(metrics, self.searcher_metric if kind == "validation" else None)
        return {"kind": kind, "metrics": plain, "batches": int(batches), "epochs": int(epochs),
                "stop_requested": self._stop_requested, "seq": next(self._report_seq)}

    def set_stop_requested(self, stop: bool = True) -> None:
        super().set_stop_requested(stop)
        with contextlib.suppress(ChannelRefused, ControllerUnreachable):
            self._apply(self._call("status", {"stop_requested": self._stop_requested}, retry_seconds=1.0))

    # --- checkpoints --------------------------------------------------------------------------

    @contextlib.contextmanager
    def save_checkpoint(self, *, batches: int, epochs: int = 0,
                        metadata: Mapping[str, Any] | None = None) -> Iterator[Path]:
        """A directory to save a checkpoint into; it is registered only once the block completes."""
        checkpoint_id = str(uuid.uuid4())
        description = self._describe(batches, epochs, metadata)
        with checkpoint_directory(self._checkpoint_root, checkpoint_id, description) as path:
            yield path
        self._apply(self._deliver("checkpoint", {
            "checkpoint_id": checkpoint_id, "path": join(self._checkpoint_root, checkpoint_id),
            "batches": int(batches), "epochs": int(epochs), "metadata": dict(metadata or {})}))

    def _describe(self, batches: int, epochs: int, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
        return {"trial_id": self.trial_id, "experiment_id": self.experiment_id,
                "experiment_uuid": self._experiment_uuid, "request_id": self.request_id,
                "batches": int(batches), "epochs": int(epochs), "hparams": self._hparams,
                "metadata": dict(metadata or {})}

    def report_invalid_hp(self, message: str = "") -> None:
        """Tell the controller the hyperparameters cannot be trained (also done for an uncaught InvalidHP)."""
        with contextlib.suppress(ChannelRefused, ControllerUnreachable):
            self._call("exit", {"reason": "INVALID_HP", "message": message}, retry_seconds=2.0)

    def report_error(self, message: str) -> None:
        with contextlib.suppress(ChannelRefused, ControllerUnreachable):
            self._call("exit", {"reason": "ERRORED", "message": message}, retry_seconds=2.0)

    # --- plumbing -----------------------------------------------------------------------------

    def _deliver(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send what must be stored: waits for the controller as long as the trial's time limits allow."""
        return self._call(name, body, retry_seconds=max(0.0, self._give_up_at - time.monotonic()))

    def _call(self, name: str, body: dict[str, Any], retry_seconds: float = 10.0) -> dict[str, Any]:
        try:
            return self._client.call(name, {**self._identity, **body}, retry_seconds=retry_seconds)
        except ChannelRefused as refused:
            if refused.status == 409:  # a newer attempt of this trial exists: this process must end
                self._preempted = True
            raise

    def _apply(self, reply: Mapping[str, Any]) -> None:
        self._take(reply)
        if reply.get("error"):
            raise SystemExit(f"hpt: {reply['error']}")

    def _take(self, reply: Mapping[str, Any]) -> None:
        """Follow the controller's decision in `reply`, unless a newer one (by its sequence number) is known."""
        with self._lock:
            if reply.get("decision_seq", 0) < self._decision_seq:
                return
            self._decision_seq = reply.get("decision_seq", 0)
            self._decision = reply.get("decision", self._decision)
            self._target = reply.get("target", self._target)
            self._checkpoint_requested = bool(reply.get("checkpoint", self._checkpoint_requested))

    def _poll_controller(self) -> None:
        gone_since: float | None = None
        while True:
            time.sleep(POLL_SECONDS)
            try:
                self._take(self._client.call("status", {**self._identity, "stop_requested": self._stop_requested},
                                             retry_seconds=0.0))
            except ChannelRefused as refused:
                if refused.status in (401, 409):
                    self._preempted = True
            except ControllerUnreachable:
                pass  # reports wait for the controller; the poller asks again
            if self.preempted:
                gone_since = gone_since or time.monotonic()
                if time.monotonic() - gone_since >= FORCED_EXIT_SECONDS:
                    os._exit(3)


class LocalContext(Context):
    """The context outside an experiment: the experiment file's defaults, reports printed, nothing sent."""

    def __init__(self, hparams: Mapping[str, Any], max_length: int | None, unit: str,
                 checkpoint_root: str | Path) -> None:
        super().__init__(hparams, trial_id=None, experiment_id=None, trial_seed=0, unit=unit)
        self.request_id = None
        self.restore: Restore | None = None
        self.max_length = max_length
        self._checkpoint_root = checkpoint_root
        self._target_validated = False
        self.preempted = False

    @property
    def target_length(self) -> int | None:
        return self.max_length

    def targets(self, default: int | None = None) -> Iterator[int]:
        """One target: the experiment file's max_length (or `default` when there is no file)."""
        target = self.max_length if self.max_length is not None else default
        if target is not None and not self._stop_requested:
            yield target

    def should_stop(self) -> bool:
        return self._stop_requested

    def should_checkpoint(self) -> bool:
        """Outside an experiment a checkpoint is saved once: after the target's validation, or on a stop."""
        return self._target_validated or self._stop_requested

    def report_training(self, metrics: Mapping[str, Any], *, batches: int, epochs: int = 0) -> None:
        """Nothing is recorded outside an experiment; a non-finite metric raises ValueError as in one."""
        _finite_metrics(metrics)

    def report_training_many(self, reports: Iterable[Sequence[Any]]) -> None:
        """As `report_training` for each `(metrics, batches)` or `(metrics, batches, epochs)`."""
        for metrics, *_ in reports:
            _finite_metrics(metrics)

    def report_validation(self, metrics: Mapping[str, Any], *, batches: int, epochs: int = 0) -> None:
        done = epochs if self.unit == "epochs" else batches
        self._target_validated = self.max_length is None or done >= self.max_length
        shown = ", ".join(f"{name}={value}" for name, value in _plain_metrics(metrics).items())
        print(f"[hpt local] validation after {batches} batches, {epochs} epochs: {shown}", flush=True)

    @contextlib.contextmanager
    def save_checkpoint(self, *, batches: int, epochs: int = 0,
                        metadata: Mapping[str, Any] | None = None) -> Iterator[Path]:
        describe = {"batches": int(batches), "epochs": int(epochs), "hparams": self._hparams,
                    "metadata": dict(metadata or {})}
        with checkpoint_directory(self._checkpoint_root, str(uuid.uuid4()), describe) as path:
            yield path

    def report_invalid_hp(self, message: str = "") -> None:
        pass

    def report_error(self, message: str) -> None:
        pass


def init(config: str | Path | None = None) -> TrialContext | LocalContext:
    """The context of the current trial, or a local one outside an experiment."""
    if "HPT_CONTROLLER_URL" in os.environ:
        return _trial_context_from_environment()
    return _local_context(config if config is not None else os.environ.get("HPT_CONFIG"))


def _trial_context_from_environment() -> TrialContext:
    client = ChannelClient(os.environ["HPT_CONTROLLER_URL"], os.environ["HPT_SECRET"],
                           channel_file=os.environ.get("HPT_CHANNEL_FILE"))
    trial_id, attempt = int(os.environ["HPT_TRIAL_ID"]), int(os.environ["HPT_ATTEMPT"])
    handed = os.environ.get(START_VARIABLE)  # the answer to "start", given at launch
    start = json.loads(handed) if handed else client.call("start", {"trial_id": trial_id, "attempt": attempt})
    context = TrialContext(client, trial_id, attempt, start)
    _install_handlers(context)
    if "HPT_IMPORTS_RECORD" in os.environ:  # the executor's warm pool preloads what the first trials import
        script = os.path.realpath(getattr(sys.modules["__main__"], "__file__", None) or os.getcwd())
        own = tuple(os.path.join(folder, "") for folder in (os.path.realpath(os.getcwd()), os.path.dirname(script)))
        _record_imports(os.environ["HPT_IMPORTS_RECORD"], own)
        atexit.register(_record_imports, os.environ["HPT_IMPORTS_RECORD"], own)
    return context


def _record_imports(path: str, own: tuple[str, ...]) -> None:
    """Write the installed top-level modules this process has imported (not the stdlib's, not the trial's own
    modules from the `own` folders: its script's and working directory) to `path`, as a JSON list in import
    order; replaced atomically."""
    names = []
    for name, module in list(sys.modules.items()):
        location = getattr(module, "__file__", None)
        if "." in name or name.startswith("_") or name in sys.stdlib_module_names or location is None or \
                getattr(module, "__name__", None) != name or os.path.realpath(location).startswith(own):
            continue
        names.append(name)
    partial = f"{path}.{os.getpid()}"
    with contextlib.suppress(OSError):
        Path(partial).write_text(json.dumps(names))
        os.replace(partial, path)


def _install_handlers(context: TrialContext) -> None:
    """SIGTERM (cancel) asks the trial to checkpoint and exit; an uncaught InvalidHP or error is reported."""
    previous_hook = sys.excepthook

    def report_uncaught(kind: type[BaseException], error: BaseException, traceback: Any) -> None:
        if isinstance(error, InvalidHP):
            context.report_invalid_hp(str(error))
        previous_hook(kind, error, traceback)

    sys.excepthook = report_uncaught
    if threading.current_thread() is threading.main_thread():
        def preempt(signum: int, frame: Any) -> None:
            context._preempted = True

        signal.signal(signal.SIGTERM, preempt)


def _local_context(config: str | Path | None) -> LocalContext:
    from hpt_core.hyperparameters import space_from_dict
    from hpt_core.safe_yaml import load_yaml

    hparams: dict[str, Any] = {}
    max_length: int | None = None
    unit = "batches"
    if config is not None:
        data = load_yaml(Path(config).read_bytes(), str(config))
        if not isinstance(data, Mapping):
            raise ConfigError([Problem("", "an experiment config must be a mapping of fields", data)], str(config))
        hparams = space_from_dict(data.get("hyperparameters") or {}).defaults()
        length = _length_of(data.get("searcher") or {})
        if length is not None:
            unit, max_length = _trial_unit(length, data.get("records_per_epoch"))
    return LocalContext(hparams, max_length, unit, Path.cwd() / "hpt_checkpoints")


def _length_of(searcher: Mapping[str, Any]) -> Length | None:
    from hpt_core.config import Length

    if "max_length" in searcher:
        return Length.model_validate(searcher["max_length"])
    if "length_per_round" in searcher and "num_rounds" in searcher:
        per_round = Length.model_validate(searcher["length_per_round"])
        return Length.model_validate({per_round.unit: per_round.value * int(searcher["num_rounds"])})
    return None


def _trial_unit(length: Length, records_per_epoch: int | None) -> tuple[str, int]:
    """The unit and target a trial trains in: records become epochs through records_per_epoch (rounded up)."""
    if length.unit != "records":
        return length.unit, length.value
    if not records_per_epoch:
        raise ConfigError([Problem("records_per_epoch", "lengths in records need records_per_epoch")])
    return "epochs", math.ceil(length.value / records_per_epoch)


def _restore_locally(restore: Restore) -> Restore:
    """The restore with `path` a local folder: a checkpoint under a URL is downloaded into the working directory."""
    local = local_copy(restore.path, Path.cwd() / RESTORE_FOLDER / restore.checkpoint_id)
    return dataclasses.replace(restore, path=str(local))


def _finite_metrics(metrics: Mapping[str, Any], searcher_metric: str | None = None) -> dict[str, Any]:
    """`metrics` as plain values; ValueError naming a metric that is NaN or infinite (`searcher_metric` aside)."""
    plain = _plain_metrics(metrics)
    check_finite(plain, searcher_metric)
    return plain


def _plain_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    plain = {}
    for name, value in metrics.items():
        if hasattr(value, "item"):
            value = value.item()
        plain[str(name)] = value
    return plain


def _dotted_names(hparams: Mapping[str, Any], prefix: str = "") -> list[str]:
    names = []
    for name in sorted(hparams):
        value = hparams[name]
        if isinstance(value, Mapping):
            names.extend(_dotted_names(value, f"{prefix}{name}{PATH_SEPARATOR}"))
        else:
            names.append(f"{prefix}{name}")
    return names
