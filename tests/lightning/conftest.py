"""The trial script under model/ is run by experiments, never imported by pytest; this file is not collected
for doctests (pytest would import it under the module name "conftest" that another folder's may hold)."""

collect_ignore_glob = ["model/*", "conftest.py"]
