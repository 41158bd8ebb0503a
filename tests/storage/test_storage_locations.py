"""Default places: HPT_HOME and HPT_STORAGE, or ~/.hpt and a SQLite file in it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hpt_core.storage import Storage, default_storage_url, experiment_dir, hpt_home, open_storage


def test_hpt_home_is_the_environment_variable_or_dot_hpt_in_home(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HPT_HOME", str(tmp_path / "home"))
    assert hpt_home() == tmp_path / "home"
    monkeypatch.delenv("HPT_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert hpt_home() == tmp_path / ".hpt"


def test_the_default_storage_is_a_sqlite_file_in_a_created_home(monkeypatch, tmp_path: Path) -> None:
    home = tmp_path / "new" / "home"
    monkeypatch.setenv("HPT_HOME", str(home))
    monkeypatch.delenv("HPT_STORAGE", raising=False)
    assert default_storage_url() == f"sqlite:///{home.resolve() / 'hpt.db'}"
    assert home.is_dir()
    with open_storage(None) as storage:
        assert storage.url == default_storage_url()
        storage.create_experiment(name="e", config={}, model_dir=".", seed=0, secret="s")
        assert stat.S_IMODE(home.stat().st_mode) == 0o700  # it holds the experiments' secrets
        assert {name: stat.S_IMODE((home / name).stat().st_mode) for name in ("hpt.db", "hpt.db-wal")} == {
            "hpt.db": 0o600, "hpt.db-wal": 0o600}
    assert (home / "hpt.db").is_file()


def test_hpt_storage_overrides_the_default_url(monkeypatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("HPT_STORAGE", url)
    assert default_storage_url() == url
    with open_storage(None) as storage:
        assert storage.url == url


def test_open_storage_uses_a_given_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'given.db'}"
    with open_storage(url) as storage:
        assert isinstance(storage, Storage) and storage.url == url


@pytest.mark.parametrize("home", ["/data/hpt", Path("/data/hpt")])
def test_an_experiment_folder_lives_under_experiments_named_by_its_uuid(home: str | Path) -> None:
    uuid = "3f2a1b4c-0d5e-4f60-8a7b-9c0d1e2f3a4b"
    assert experiment_dir(home, uuid) == Path(f"/data/hpt/experiments/{uuid}")
