"""Checkpoint downloads from the trial page and the experiment page: the zip holds exactly the stored files."""

from __future__ import annotations

import zipfile
from pathlib import Path

from hpt_core.results import Experiment


def stored_files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def downloaded_files(download, tmp_path: Path) -> dict[str, bytes]:
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    with zipfile.ZipFile(target) as archive:
        return {name: archive.read(name) for name in archive.namelist() if not name.endswith("/")}


def test_trial_page_downloads_a_checkpoint_as_a_zip_of_its_stored_files(open_page, dashboard_url, dashboard_site,
                                                                         asha_experiment_id, tmp_path):
    with dashboard_site.storage() as storage:
        checkpoints = storage.checkpoints(experiment_id=asha_experiment_id)
        deleted = [record for record in storage.checkpoints(experiment_id=asha_experiment_id, include_deleted=True)
                   if record.state == "DELETED"]
    checkpoint = checkpoints[-1]
    watched = open_page(dashboard_url)
    watched.open(f"#/trials/{checkpoint.trial_id}")
    row = watched.page.locator(f"[data-testid=checkpoint-row][data-checkpoint-id='{checkpoint.id}']")
    with watched.page.expect_download() as download_info:
        row.get_by_test_id("checkpoint-download").click()
    files = downloaded_files(download_info.value, tmp_path)
    assert files == stored_files(Path(checkpoint.path))
    assert "state.json" in files

    for record in deleted:
        if record.trial_id == checkpoint.trial_id:
            gone = watched.page.locator(f"[data-testid=checkpoint-row][data-checkpoint-id='{record.id}']")
            assert gone.get_by_test_id("checkpoint-download").count() == 0
    assert watched.problems() == []


def test_experiment_page_downloads_the_best_checkpoint(open_page, dashboard_url, dashboard_site, asha_experiment_id,
                                                       tmp_path):
    with Experiment.load(asha_experiment_id, dashboard_site.storage_url) as experiment:
        best = experiment.best_checkpoint()
    watched = open_page(dashboard_url)
    watched.open(f"#/experiments/{asha_experiment_id}")
    link = watched.page.get_by_test_id("best-checkpoint-download")
    assert f"trial {best.trial_id}" in link.inner_text()
    with watched.page.expect_download() as download_info:
        link.click()
    assert downloaded_files(download_info.value, tmp_path) == stored_files(best.path)
    assert watched.problems() == []
