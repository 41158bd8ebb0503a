"""The web dashboard: a JSON API over storage and the single page that draws it (`hpt dashboard`).

`create_app` (in `hpt_core.dashboard.app`) builds the FastAPI application and `serve` (in
`hpt_core.dashboard.server`) runs it; FastAPI and uvicorn are optional dependencies (extra
`dashboard`), imported only there, so this package itself stays light: `registry` (where a running
dashboard leaves its address, read by `hpt experiment create`) needs neither.
"""
