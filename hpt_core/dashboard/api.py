"""The JSON API under /api/v1: what the dashboard's page reads (and users can script), and the write actions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse

from hpt_core.dashboard import checkpoints, experiment_views, searcher_views, trial_views
from hpt_core.dashboard.downsample import MIN_POINTS
from hpt_core.dashboard.params import bounded
from hpt_core.dashboard.security import token_guard
from hpt_core.dashboard.state import DashboardState
from hpt_core.runner import STATE_ACTIONS, change_state
from hpt_core.storage import Storage

MAX_PAGE = 500
MAX_TOP = 50
MAX_POINTS = 20_000
MAX_LOG_BYTES = 4 << 20
_SAFE_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def build_api(data: DashboardState, token: str | None) -> APIRouter:
    """The routes of /api/v1 over `data`; the write actions need `token`."""
    api = APIRouter(prefix="/api/v1")
    require_token = token_guard(token)
    storage = data.storage

    @api.get("/experiments", summary="Every experiment with its state, progress, trials by state and best metric")
    def list_experiments() -> Response:
        return _json(experiment_views.experiment_list(data))

    @api.get("/experiments/{experiment_id}", summary="One experiment: summary, config, hyperparameters, metrics")
    def get_experiment(experiment_id: int) -> Response:
        return _json(experiment_views.experiment_detail(data, experiment_id))

    @api.get("/experiments/{experiment_id}/best-over-time",
             summary="The validations of the searcher metric that improved on all earlier ones")
    def best_over_time(
        experiment_id: int,
        metric: str | None = Query(None, description="validation metric (default: the searcher metric)"),
    ) -> Response:
        return _json(experiment_views.best_over_time(data, experiment_id, metric=metric))

    @api.get("/experiments/{experiment_id}/trials", summary="One page of the trials table, filtered and sorted")
    def trials(
        experiment_id: int,
        offset: int = Query(0, description="trials to skip"),
        limit: int = Query(50, description=f"trials per page (1 to {MAX_PAGE})"),
        sort: str = Query("id", description="id, state, best_validation, latest_validation, batches, restarts, "
                                            "checkpoints, or hp:<hyperparameter name>"),
        order: str = Query("asc", description="asc or desc"),
        state: str | None = Query(None, description="trial states to keep, comma-separated (e.g. RUNNING,PAUSED)"),
        q: str | None = Query(None, description="text the trial's hyperparameters or end reason contain, or its id"),
    ) -> Response:
        states = [entry.strip() for entry in state.split(",") if entry.strip()] if state else []
        return _json(experiment_views.trials_page(
            data, experiment_id, offset=bounded("offset", offset, 0), limit=bounded("limit", limit, 1, MAX_PAGE),
            sort=sort, order=order, states=states, text=q))

    @api.get("/experiments/{experiment_id}/curves", summary="Learning curves of the top trials, downsampled")
    def curves(
        experiment_id: int,
        metric: str | None = Query(None, description="metric name (default: the searcher metric)"),
        kind: str = Query("validation", description="validation or training reports"),
        top: int = Query(5, description=f"how many of the best trials (1 to {MAX_TOP})"),
        x: str = Query("batches", description="batches or epochs"),
        max_points: int = Query(400, description=f"points per curve at most ({MIN_POINTS} to {MAX_POINTS})"),
    ) -> Response:
        return _json(experiment_views.learning_curves(
            data, experiment_id, metric=metric, kind=kind, top=bounded("top", top, 1, MAX_TOP), x=x,
            max_points=bounded("max_points", max_points, MIN_POINTS, MAX_POINTS)))

    @api.get("/experiments/{experiment_id}/hparams",
             summary="Each trial's hyperparameters and validation at a training length")
    def hparams(
        experiment_id: int,
        metric: str | None = Query(None, description="validation metric (default: the searcher metric)"),
        length: int | None = Query(None, description="batches: each trial's last validation at or before it "
                                                     "(default: its latest)"),
    ) -> Response:
        return _json(experiment_views.hyperparameter_values(data, experiment_id, metric=metric, length=length))

    @api.get("/experiments/{experiment_id}/searcher-view",
             summary="The search method's view: ASHA brackets and rungs, PBT lineage, end reasons")
    def searcher_view(experiment_id: int) -> Response:
        return _json(searcher_views.searcher_view(data, experiment_id))

    @api.get("/experiments/{experiment_id}/best-checkpoint",
             summary="The checkpoint with the best validation of the experiment")
    def best_checkpoint(experiment_id: int) -> Response:
        best = checkpoints.best_checkpoint(data, experiment_id)
        if best is None:
            return _json(dict.fromkeys(["checkpoint_id", "trial_id", "batches", "epochs", "download"]))
        return _json({"checkpoint_id": best.id, "trial_id": best.trial_id, "batches": best.batches,
                      "epochs": best.epochs, "download": f"/api/v1/checkpoints/{best.id}/download"})

    @api.get("/trials/{trial_id}", summary="One trial: hyperparameters, restarts, metric names, checkpoints")
    def get_trial(trial_id: int) -> Response:
        return _json(trial_views.trial_detail(storage, trial_id))

    @api.get("/trials/{trial_id}/metrics", summary="A trial's metrics against batches, downsampled")
    def trial_metrics(
        trial_id: int,
        kind: str = Query("validation", description="validation or training"),
        max_points: int = Query(1000, description=f"points per metric at most ({MIN_POINTS} to {MAX_POINTS})"),
    ) -> Response:
        return _json(trial_views.trial_metrics(storage, trial_id, kind=kind,
                                               max_points=bounded("max_points", max_points, MIN_POINTS, MAX_POINTS)))

    @api.get("/trials/{trial_id}/log", summary="The end of a trial's output log")
    def trial_log(
        trial_id: int,
        tail_bytes: int = Query(65536, description=f"bytes from the end (1 to {MAX_LOG_BYTES})"),
    ) -> Response:
        return _json(trial_views.trial_log_tail(storage, trial_id,
                                                tail_bytes=bounded("tail_bytes", tail_bytes, 1, MAX_LOG_BYTES)))

    @api.get("/checkpoints/{checkpoint_id}/download", summary="A checkpoint's files as a zip",
             response_class=StreamingResponse, responses={200: {"content": {"application/zip": {}}}})
    def download_checkpoint(checkpoint_id: str) -> StreamingResponse:
        checkpoint = checkpoints.downloadable_checkpoint(storage, checkpoint_id)
        name = _SAFE_FILE_NAME.sub("_", f"checkpoint-{checkpoint.id}.zip")
        return StreamingResponse(checkpoints.zip_stream(Path(checkpoint.path)), media_type="application/zip",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})

    for action in STATE_ACTIONS:
        api.add_api_route(f"/experiments/{{experiment_id}}/{action}", _action_route(storage, action),
                          methods=["POST"], dependencies=[Depends(require_token)],
                          summary=f"{action.capitalize()} the experiment (needs the token)")
    return api


def _json(data: Any) -> Response:
    """`data` as a JSON response (plain JSON data already: FastAPI's encoder would walk large pages again)."""
    return Response(json.dumps(data, separators=(",", ":")), media_type="application/json")


def _action_route(storage: Storage, action: str) -> Any:
    def run_action(experiment_id: int) -> Response:
        return _json({"state": change_state(storage, experiment_id, action)})

    run_action.__name__ = f"{action}_experiment"
    return run_action
