"""The dashboard's web application: the page, its static files, plotly.js, and the JSON API under /api/v1.

Every response carries the headers of `security`; errors are JSON `{"detail": message}`: 400 for a bad
parameter (naming it, the value and what is allowed), 404 for what storage does not have, 401/403
for a write action without the token, 409 for an action the experiment's state does not allow.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

import hpt_core
from hpt_core.dashboard.api import build_api
from hpt_core.dashboard.params import BadParameter
from hpt_core.dashboard.security import SecurityHeaders, TokenGate
from hpt_core.dashboard.state import DashboardState
from hpt_core.runner import ActionRefused
from hpt_core.storage import open_storage

STATIC_DIR = Path(__file__).parent / "static"
OPENAPI_URL = "/api/openapi.json"
NO_PAGE = ("the dashboard's page is not installed (hpt_core/dashboard/static/index.html is missing); "
           f"the JSON API is under /api/v1, described at {OPENAPI_URL}")


def create_app(storage_url: str, token: str | None = None, *, allowed_hosts: list[str] | None = None,
               token_for_reads: bool = False) -> FastAPI:
    """The dashboard over the storage at `storage_url`; pause, activate and cancel need `token` (None: read-only),
    and with `token_for_reads` every request does (`security.TokenGate`).

    When it starts, a background thread reads what the newest experiments' pages need (`DashboardState.warm_up`).

    `allowed_hosts` limits the Host header the app answers to (as a guard against DNS rebinding); None: any.
    """
    data = DashboardState(open_storage(storage_url), writable=token is not None)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        warming = threading.Thread(target=data.warm_up, name="hpt-dashboard-warm-up", daemon=True)
        warming.start()
        yield
        data.stop_warming.set()
        warming.join(timeout=30)
        data.storage.close()

    app = FastAPI(title="hpt dashboard", version=hpt_core.__version__, openapi_url=OPENAPI_URL, docs_url=None,
                  redoc_url=None, lifespan=lifespan,
                  description="The JSON API of hpt's dashboard: experiments, trials, metrics, checkpoints.")
    if token_for_reads:
        if token is None:
            raise ValueError("token_for_reads needs a token")
        app.add_middleware(TokenGate, token=token)
    app.add_middleware(SecurityHeaders)
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.state.dashboard = data
    _add_error_handlers(app)
    app.include_router(build_api(data, token))
    _add_pages(app)
    return app


def _add_pages(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def index() -> Response:
        page = STATIC_DIR / "index.html"
        if not page.is_file():
            return PlainTextResponse(NO_PAGE, status_code=503)
        return FileResponse(page, media_type="text/html", headers={"Cache-Control": "no-cache"})

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> Response:
        return FileResponse(_plotly_file("package_data/plotly.min.js"), media_type="text/javascript")

    @app.get("/static/vendor/plotly-LICENSE.txt", include_in_schema=False)
    def plotly_license() -> Response:
        return FileResponse(_plotly_license(), media_type="text/plain")

    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")


def _plotly_file(relative: str) -> Path:
    """A file of the installed plotly package (the charting library ships its own minified plotly.js)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise LookupError("plotly is not installed: pip install -e '.[dashboard]'")
    return Path(next(iter(spec.submodule_search_locations))) / relative


def _plotly_license() -> Path:
    distribution = importlib.metadata.distribution("plotly")
    for file in distribution.files or []:
        if file.name.upper().startswith("LICENSE"):
            return Path(str(distribution.locate_file(file)))
    raise LookupError("the installed plotly package ships no license file")


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BadParameter)
    def bad_parameter(_request: Request, error: BadParameter) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = []
        for problem in error.errors():
            name = problem["loc"][-1] if problem.get("loc") else "request"
            message = problem.get("msg", "invalid").lower()
            problems.append(f"parameter {name!r}: {message}, but got {problem.get('input')!r}")
        return JSONResponse({"detail": "; ".join(problems)}, status_code=400)

    @app.exception_handler(LookupError)
    def not_found(_request: Request, error: LookupError) -> JSONResponse:
        return JSONResponse({"detail": str(error.args[0] if error.args else error)}, status_code=404)

    @app.exception_handler(ActionRefused)
    def refused(_request: Request, error: ActionRefused) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=409)
