"""The `mlflow` logger: an MLflow run per experiment, with a nested run per trial.

Enable it in the experiment file (it needs the `mlflow` extra)::

    loggers:
      mlflow:
        tracking_uri: sqlite:///mlflow.db     # default: MLflow's own (MLFLOW_TRACKING_URI)
        experiment_name: digits               # default: the experiment's `name`, else "hpt"

The experiment's run (tags `hpt.experiment_id`, `hpt.experiment_dir`) holds the searcher's
fields as parameters (`searcher.metric`, ...). Each trial's run is nested in it (tags
`hpt.trial_id`, `hpt.request_id`): its hyperparameters as parameters (nested names dotted), its
metrics as `training/<name>` and `validation/<name>` at step = batches. Runs end FINISHED,
KILLED or FAILED as the trial or experiment ends COMPLETED, CANCELED or ERROR. The experiment's
run id is kept in `<experiment dir>/mlflow_run_id`, so a resumed experiment goes on in the same
runs. Names MLflow does not allow in a key (characters other than letters, digits, `_-. /`)
have those characters replaced by `_`.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Annotated, Any, Optional

from pydantic import AfterValidator

from hpt_core.config import LoggerOptions, StrictStr
from hpt_core.loggers import Logger, MissingExtra, hookimpl, numeric_metrics
from hpt_core.space import flatten

RUN_STATUS = {"COMPLETED": "FINISHED", "CANCELED": "KILLED", "ERROR": "FAILED"}
RUN_ID_FILE = "mlflow_run_id"
DEFAULT_EXPERIMENT_NAME = "hpt"
PARAMS_PER_BATCH = 100  # MLflow takes at most 100 parameters (and 1000 metrics) in one log_batch
_NOT_IN_A_KEY = re.compile(r"[^\w\-. /]")


def _not_a_folder(uri: Optional[str]) -> Optional[str]:
    """MLflow refuses its folder store (`file:` URIs, Ray Tune's default) unless MLFLOW_ALLOW_FILE_STORE is set."""
    is_folder = uri is not None and uri.startswith(("file:", "/", ".", "~"))
    if is_folder and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() != "true":
        raise ValueError("MLflow no longer takes a folder as its tracking store; use a database such as "
                         "`sqlite:///mlflow.db` or a tracking server such as `http://127.0.0.1:5000`")
    return uri


class MLflowOptions(LoggerOptions):
    """`loggers.mlflow`: the tracking server (or store) and the MLflow experiment to log to."""

    tracking_uri: Annotated[Optional[StrictStr], AfterValidator(_not_a_folder)] = None
    experiment_name: Optional[StrictStr] = None


class MLflowLogger(Logger):
    """Logs the experiment and its trials as MLflow runs."""

    name = "mlflow"
    options_model = MLflowOptions

    def __init__(self, experiment_id: int, options: MLflowOptions) -> None:
        super().__init__(experiment_id, options)
        try:
            from mlflow import MlflowClient
        except ImportError as error:
            raise MissingExtra(self.name, "mlflow", "mlflow") from error
        self.client = MlflowClient(tracking_uri=options.tracking_uri)
        self.run_id: str | None = None
        self._mlflow_experiment_id: str | None = None
        self._trial_runs: dict[int, str] = {}
        self._resumed = False

    @hookimpl
    def hpt_experiment_started(self, experiment_id: int, config: Any, experiment_dir: str) -> None:
        if not self.observes(experiment_id):
            return
        self._mlflow_experiment_id = self._experiment(self.options.experiment_name or config.name
                                                      or DEFAULT_EXPERIMENT_NAME)
        run_id_file = Path(experiment_dir) / RUN_ID_FILE
        if run_id_file.exists():
            self.run_id = run_id_file.read_text().strip()
            self._resumed = True
            return
        run = self.client.create_run(
            self._mlflow_experiment_id, run_name=f"hpt experiment {experiment_id}",
            tags={"hpt.experiment_id": str(experiment_id), "hpt.experiment_dir": str(experiment_dir)})
        self.run_id = run.info.run_id
        searcher_fields = flatten({"searcher": config.searcher.model_dump(mode="json", by_alias=True)})
        self._log(self.run_id, params=searcher_fields)
        run_id_file.write_text(self.run_id)

    @hookimpl
    def hpt_trial_started(self, experiment_id: int, trial_id: int, request_id: int, hparams: dict[str, Any]) -> None:
        if not self.observes(experiment_id) or self._trial_run(trial_id) is not None:
            return
        run = self.client.create_run(
            self._mlflow_experiment_id, run_name=f"trial {trial_id}",
            tags={"mlflow.parentRunId": self.run_id, "hpt.experiment_id": str(experiment_id),
                  "hpt.trial_id": str(trial_id), "hpt.request_id": str(request_id)})
        self._trial_runs[trial_id] = run.info.run_id
        self._log(run.info.run_id, params=flatten(hparams))

    @hookimpl
    def hpt_metrics_reported(
        self, experiment_id: int, trial_id: int, kind: str, metrics: dict[str, Any], batches: int, epochs: int
    ) -> None:
        if not self.observes(experiment_id):
            return
        self._log(self._known_trial_run(trial_id),
                  metrics={f"{kind}/{name}": value for name, value in numeric_metrics(metrics).items()}, step=batches)

    @hookimpl
    def hpt_trial_ended(self, experiment_id: int, trial_id: int, state: str, reason: str) -> None:
        if not self.observes(experiment_id):
            return
        run_id = self._known_trial_run(trial_id)
        self.client.set_tag(run_id, "hpt.end_reason", reason)
        self.client.set_terminated(run_id, status=RUN_STATUS.get(state, "FAILED"))

    @hookimpl
    def hpt_experiment_ended(self, experiment_id: int, state: str) -> None:
        if not self.observes(experiment_id) or self.run_id is None:
            return
        self.client.set_terminated(self.run_id, status=RUN_STATUS.get(state, "FAILED"))

    def _experiment(self, name: str) -> str:
        """The id of the MLflow experiment `name`, created if it does not exist."""
        found = self.client.get_experiment_by_name(name)
        return found.experiment_id if found is not None else self.client.create_experiment(name)

    def _trial_run(self, trial_id: int) -> str | None:
        """The id of a trial's run: made by this logger, or by the controller that ran before a resume."""
        if trial_id not in self._trial_runs and self._resumed:
            runs = self.client.search_runs(
                [self._mlflow_experiment_id],
                filter_string=f"tags.`mlflow.parentRunId` = '{self.run_id}' and tags.`hpt.trial_id` = '{trial_id}'",
                max_results=1)
            if not runs:
                return None
            self._trial_runs[trial_id] = runs[0].info.run_id
        return self._trial_runs.get(trial_id)

    def _known_trial_run(self, trial_id: int) -> str:
        run_id = self._trial_run(trial_id)
        if run_id is None:
            raise LookupError(f"the mlflow logger has no run for trial {trial_id}: its start was not logged")
        return run_id

    def _log(self, run_id: str, params: dict[str, Any] | None = None, metrics: dict[str, float] | None = None,
             step: int = 0) -> None:
        """Log in batches of at most MLflow's limit of parameters per call."""
        from mlflow.entities import Metric, Param

        timestamp = int(time.time() * 1000)
        param_list = [Param(key, str(value)) for key, value in _keyed(params or {}).items()]
        metric_list = [Metric(key, value, timestamp, step) for key, value in _keyed(metrics or {}).items()]
        for start in range(0, max(len(param_list), len(metric_list)), PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=param_list[start:start + PARAMS_PER_BATCH],
                                  metrics=metric_list[start:start + PARAMS_PER_BATCH])


def _keyed(values: dict[str, Any]) -> dict[str, Any]:
    """`values` under names MLflow accepts as keys."""
    return {_NOT_IN_A_KEY.sub("_", name): value for name, value in values.items()}
