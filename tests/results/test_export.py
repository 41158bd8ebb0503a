"""`hpt trial download`, `hpt experiment download`: complete exports, loadable without hpt."""

import json
import subprocess
import sys
import uuid

import pytest

from hpt_core.export import EXPORT_METADATA_FILE, export_checkpoint
from hpt_core.storage import Storage

# Reads an export with the standard library alone: no site-packages (-S), so hpt cannot be imported.
LOAD_WITHOUT_HPT = """
import json, pathlib, sys
try:
    import hpt_core
except ImportError:
    pass
else:
    sys.exit("hpt_core was importable")
folder = pathlib.Path(sys.argv[1])
metadata = json.loads((folder / "hpt_export.json").read_text())
state = json.loads((folder / "state.json").read_text())
print(json.dumps({"hparams": metadata["trial"]["hparams"], "batches": metadata["checkpoint"]["batches"],
                  "val_loss": (metadata["validation"] or {}).get("val_loss"), "state": state}))
"""


def load_without_hpt(folder):
    result = subprocess.run([sys.executable, "-I", "-S", "-c", LOAD_WITHOUT_HPT, str(folder)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def trial_with_quality(finished, quality, behaviour="normal"):
    storage = finished.storage
    return next(trial for trial in storage.list_trials(finished.experiment_id)
                if trial.hparams["quality"] == quality and trial.hparams["behaviour"] == behaviour)


def logged_validation(finished, trial_id):
    return [entry["metrics"] for entry in finished.log()
            if entry["event"] == "report" and entry["kind"] == "validation" and entry["trial_id"] == trial_id][-1]


def test_trial_download_best_writes_the_checkpoint_and_what_it_is(finished, tmp_path):
    trial = trial_with_quality(finished, 0.5)
    storage = finished.storage
    # two checkpoints at the last step (30) with the same validation: the older one is the best
    first_at_30 = next(c for c in storage.checkpoints(trial_id=trial.id) if c.batches == 30)
    result = finished.hpt("trial", "download", str(trial.id), "--best", "-o", str(tmp_path / "best"))
    assert result.returncode == 0, result.stderr
    assert f"wrote checkpoint {first_at_30.id} of trial {trial.id} to {tmp_path / 'best'}" in result.stdout
    assert "val_loss" in result.stdout and "accuracy" in result.stdout and first_at_30.id in result.stdout

    folder = tmp_path / "best"
    assert sorted(path.name for path in folder.iterdir()) == ["hpt_checkpoint.json", EXPORT_METADATA_FILE,
                                                              "state.json"]
    metadata = json.loads((folder / EXPORT_METADATA_FILE).read_text())
    assert metadata["checkpoint"]["id"] == first_at_30.id
    assert (metadata["checkpoint"]["batches"], metadata["checkpoint"]["epochs"]) == (30, 3)
    assert metadata["trial"]["id"] == trial.id and metadata["trial"]["hparams"] == trial.hparams
    assert metadata["experiment"] == {"id": finished.experiment_id, "name": "results", "searcher": "grid",
                                      "metric": "val_loss", "smaller_is_better": True}
    assert metadata["validation"] == logged_validation(finished, trial.id)
    assert metadata["training"]["loss"] == pytest.approx(metadata["validation"]["val_loss"])

    loaded = load_without_hpt(folder)
    assert loaded == {"hparams": trial.hparams, "batches": 30, "val_loss": metadata["validation"]["val_loss"],
                      "state": {"weight": 1.5, "epochs": 3}}


def test_trial_download_latest_and_by_id(finished, tmp_path):
    trial = trial_with_quality(finished, 2.0, "die_once")
    storage = finished.storage
    checkpoints = storage.checkpoints(trial_id=trial.id)
    latest = finished.hpt("trial", "download", str(trial.id), "--latest", "-o", str(tmp_path / "latest"))
    assert latest.returncode == 0, latest.stderr
    assert json.loads((tmp_path / "latest" / EXPORT_METADATA_FILE).read_text())["checkpoint"]["id"] == next(
        c.id for c in checkpoints if c.batches == 30)  # the highest step; of two there, the older

    first = checkpoints[0]
    by_id = finished.hpt("trial", "download", str(trial.id), "--id", first.id, "-o", str(tmp_path / "first"))
    assert by_id.returncode == 0, by_id.stderr
    loaded = load_without_hpt(tmp_path / "first")
    assert loaded == {"hparams": trial.hparams, "batches": 10, "val_loss": None,
                      "state": {"weight": 2.0, "epochs": 1}}


def test_trial_download_goes_to_checkpoints_id_by_default(finished, tmp_path):
    trial = trial_with_quality(finished, 0.5)
    result = finished.hpt("trial", "download", str(trial.id), "--latest", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (folder,) = (tmp_path / "checkpoints").iterdir()
    assert str(folder) in result.stdout and (folder / EXPORT_METADATA_FILE).is_file()


def test_experiment_download_writes_the_best_checkpoint_of_the_best_trials_with_an_index(finished, tmp_path):
    # quality 2.0 trains to the lower val_loss (1/7 against 1/2.5), with or without its restart
    best_trials = {trial_with_quality(finished, 2.0, behaviour).id for behaviour in ("normal", "die_once")}
    result = finished.hpt("experiment", "download", str(finished.experiment_id), "--top-n", "2",
                          "-o", str(tmp_path / "export"))
    assert result.returncode == 0, result.stderr
    assert f"wrote the best checkpoint of 2 trials to {tmp_path / 'export'}" in result.stdout
    index = json.loads((tmp_path / "export" / "index.json").read_text())
    assert [entry["rank"] for entry in index["checkpoints"]] == [1, 2]
    assert {entry["trial_id"] for entry in index["checkpoints"]} == best_trials
    for entry in index["checkpoints"]:
        folder = tmp_path / "export" / entry["folder"]
        assert entry["folder"] == f"trial-{entry['trial_id']}"
        loaded = load_without_hpt(folder)
        assert loaded["batches"] == 30 and loaded["val_loss"] == pytest.approx(1 / 7)
        assert loaded["state"] == {"weight": 6.0, "epochs": 3}


def test_downloads_refuse_to_write_over_files(finished, tmp_path):
    trial = trial_with_quality(finished, 0.5)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "mine.txt").write_text("keep me")
    result = finished.hpt("trial", "download", str(trial.id), "--best", "-o", str(occupied))
    assert result.returncode == 2 and "--output" in result.stderr and "is not empty" in result.stderr
    assert [path.name for path in occupied.iterdir()] == ["mine.txt"]


def test_a_checkpoint_of_another_trial_is_refused(finished, tmp_path):
    one, other = trial_with_quality(finished, 0.5), trial_with_quality(finished, 2.0)
    storage = finished.storage
    foreign = storage.checkpoints(trial_id=other.id)[0]
    result = finished.hpt("trial", "download", str(one.id), "--id", foreign.id, "-o", str(tmp_path / "x"))
    assert result.returncode == 2 and f"belongs to trial {other.id}, not to trial {one.id}" in result.stderr
    assert not (tmp_path / "x").exists()


def test_which_checkpoint_must_be_said(finished):
    result = finished.hpt("trial", "download", "1")
    assert result.returncode == 2 and "one of the arguments --best --latest --id is required" in result.stderr


# --- on storage written directly ------------------------------------------------------------------


@pytest.fixture
def checkpoint_on_disk(storage_url, tmp_path):
    storage = Storage(storage_url)
    experiment_id = storage.create_experiment(
        name="direct", config={"searcher": {"name": "single", "metric": "loss"}}, model_dir=str(tmp_path), seed=1,
        secret="s")
    trial_id = storage.create_trial(experiment_id, 1, {"lr": 0.1}, seed=1)
    checkpoint_id = str(uuid.uuid4())
    folder = tmp_path / "root" / checkpoint_id
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"weights")
    storage.add_checkpoint(trial_id, checkpoint_id, path=str(folder), batches=5, epochs=1, length=5, metadata={})
    yield storage, checkpoint_id, folder
    storage.close()


def test_a_deleted_checkpoint_cannot_be_downloaded(checkpoint_on_disk, tmp_path):
    storage, checkpoint_id, _ = checkpoint_on_disk
    storage.mark_checkpoint_deleted(checkpoint_id)
    with pytest.raises(LookupError, match="deleted by checkpoint garbage collection"):
        export_checkpoint(storage, checkpoint_id, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_links_inside_a_checkpoint_are_copied_as_links_never_followed(checkpoint_on_disk, tmp_path):
    storage, checkpoint_id, folder = checkpoint_on_disk
    secret = tmp_path / "secret.txt"
    secret.write_text("not for export")
    (folder / "innocent").symlink_to(secret)
    exported = export_checkpoint(storage, checkpoint_id, tmp_path / "out")
    assert (exported.path / "innocent").is_symlink()
    assert (exported.path / "weights.bin").read_bytes() == b"weights"
    assert exported.metadata["validation"] is None and exported.metadata["trial"]["hparams"] == {"lr": 0.1}
    assert not list(tmp_path.glob(".out.*.partial"))
