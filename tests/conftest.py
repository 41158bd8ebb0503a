"""Shared fixtures: one PostgreSQL server for the whole run (see conftest_postgres.py)."""

pytest_plugins = ["conftest_postgres"]

collect_ignore_glob = ["runtime/model/*", "runtime/searchers/*", "plugin_fixture/*"]
