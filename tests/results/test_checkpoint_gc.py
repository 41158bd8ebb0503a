"""Checkpoint garbage collection: which checkpoints an experiment keeps, and that the others really go."""

import logging
import uuid
from pathlib import Path
from types import SimpleNamespace

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from real_experiments import ExperimentFolder

import hpt_core
from hpt_core.checkpoint_gc import (
    checkpoints_still_needed,
    checkpoints_to_keep,
    collect_garbage,
    collect_superseded,
    superseded_checkpoints,
)
from hpt_core.storage import Storage


def gc_config(save_experiment_best, save_trial_best, save_trial_latest, smaller_is_better=True):
    return hpt_core.load_config({
        "entrypoint": "true",
        "searcher": {"name": "random", "metric": "val_loss", "smaller_is_better": smaller_is_better,
                     "max_trials": 2, "max_length": {"batches": 50}},
        "hyperparameters": {"x": 1},
        "checkpoint_storage": {"save_experiment_best": save_experiment_best, "save_trial_best": save_trial_best,
                               "save_trial_latest": save_trial_latest},
    })


class Book:
    """An experiment written straight into storage, with a real folder for each checkpoint."""

    def __init__(self, storage: Storage, root: Path, config):
        self.storage, self.root, self.config = storage, root, config
        self.experiment_id = storage.create_experiment(name="gc", config=config.to_dict(), model_dir=str(root),
                                                       seed=1, secret="s")
        self.names: dict[str, str] = {}  # our name ("A2") -> checkpoint id

    def trial(self, request_id, state="COMPLETED", parent_request_id=None):
        trial_id = self.storage.create_trial(self.experiment_id, request_id, {"x": 1}, seed=request_id,
                                             parent_request_id=parent_request_id)
        self.storage.update_trial(trial_id, state=state)
        return trial_id

    def checkpoint(self, name, trial_id, batches):
        checkpoint_id = str(uuid.uuid4())
        folder = self.root / checkpoint_id
        folder.mkdir(parents=True)
        (folder / "weights.bin").write_bytes(b"\0" * 16)
        self.storage.add_checkpoint(trial_id, checkpoint_id, path=str(folder), batches=batches, epochs=0,
                                    length=batches, metadata={})
        self.names[name] = checkpoint_id

    def validation(self, trial_id, batches, value):
        self.storage.add_metrics(trial_id, "validation", {"val_loss": value}, batches=batches, epochs=0)

    def named(self, ids):
        by_id = {checkpoint_id: name for name, checkpoint_id in self.names.items()}
        return {by_id[checkpoint_id] for checkpoint_id in ids}

    def on_disk(self):
        return {name for name, checkpoint_id in self.names.items() if (self.root / checkpoint_id).exists()}

    def in_storage(self):
        return self.named(c.id for c in self.storage.checkpoints(experiment_id=self.experiment_id))


@pytest.fixture
def storage(storage_url):
    opened = Storage(storage_url)
    yield opened
    opened.close()


def worked_example(storage, root):
    """Two ended trials, ten checkpoints, smaller is better; keep 3 experiment best, 1 best and 1 latest a trial.

    checkpoint  trial  step  validation at its step
    A1          A      10    0.50
    A2          A      20    0.30
    A3          A      30    -      (a *training* report says val_loss 0.01 here: it does not count)
    A4          A      40    0.30   (ties with A2)
    A5          A      50    0.45
    B1          B      10    0.25
    B2          B      20    0.20   (step 20 was reported twice, 0.60 then 0.20: the last counts)
    B3          B      30    0.35
    B4          B      40    -      (B validated at 45, not at 40)
    B5          B      40    -      (same step as B4, saved after it)
    """
    book = Book(storage, root, gc_config(save_experiment_best=3, save_trial_best=1, save_trial_latest=1))
    trial_a, trial_b = book.trial(1), book.trial(2)
    for name, batches in (("A1", 10), ("A2", 20), ("A3", 30), ("A4", 40), ("A5", 50)):
        book.checkpoint(name, trial_a, batches)
    for name, batches in (("B1", 10), ("B2", 20), ("B3", 30), ("B4", 40), ("B5", 40)):
        book.checkpoint(name, trial_b, batches)
    for batches, value in ((10, 0.50), (20, 0.30), (40, 0.30), (50, 0.45)):
        book.validation(trial_a, batches, value)
    storage.add_metrics(trial_a, "training", {"val_loss": 0.01}, batches=30, epochs=0)
    for batches, value in ((10, 0.25), (20, 0.60), (20, 0.20), (30, 0.35), (45, 0.10)):
        book.validation(trial_b, batches, value)
    return book


# Survivors of the worked example, by the rules:
#   experiment best 3 (only checkpoints with a validation; ties go to the older):
#       B2 (0.20), B1 (0.25), A2 (0.30) -- A4 (0.30 too) is younger than A2 and so 4th
#   best 1 of each trial:   A -> A2 (ties with A4; A2 is older)     B -> B2 (0.20)
#   latest 1 of each trial: A -> A5 (step 50)                       B -> B4 (step 40 ties with B5; B4 is older)
# Union: A2, A5, B1, B2, B4. Removed: A1 (0.50), A3 (no validation, not latest), A4 (loses both ties),
# B3 (0.35: 5th of the experiment, 3rd of B), B5 (loses the tie for latest, no validation).
# Had the first report at step 20 counted (B2 at 0.60), B1 would be B's best and A4 3rd of the experiment.
WORKED_EXAMPLE_SURVIVORS = {"A2", "A5", "B1", "B2", "B4"}


def test_the_worked_example_keeps_exactly_the_union_of_experiment_best_trial_best_and_trial_latest(storage, tmp_path):
    book = worked_example(storage, tmp_path / "checkpoints")

    deleted = collect_garbage(storage, book.experiment_id, book.config)

    assert book.named(deleted) == {"A1", "A3", "A4", "B3", "B5"}
    assert book.in_storage() == WORKED_EXAMPLE_SURVIVORS
    assert book.on_disk() == WORKED_EXAMPLE_SURVIVORS
    marked = {book.named([c.id]).pop(): c.state for c in storage.checkpoints(experiment_id=book.experiment_id,
                                                                            include_deleted=True)}
    assert marked == {name: "COMPLETED" if name in WORKED_EXAMPLE_SURVIVORS else "DELETED" for name in book.names}


def test_collecting_again_removes_nothing_more(storage, tmp_path):
    book = worked_example(storage, tmp_path / "checkpoints")
    collect_garbage(storage, book.experiment_id, book.config)
    assert collect_garbage(storage, book.experiment_id, book.config) == []
    assert book.on_disk() == WORKED_EXAMPLE_SURVIVORS


def test_larger_is_better_turns_the_ranking_around(tmp_path):
    checkpoints = [SimpleNamespace(id=name, trial_id=1, batches=batches)
                   for name, batches in (("low", 10), ("high", 20), ("last", 30))]
    validations = {1: {10: 0.1, 20: 0.9, 30: 0.5}}
    keep = checkpoints_to_keep(checkpoints, validations, save_experiment_best=1, save_trial_best=0,
                               save_trial_latest=0, smaller_is_better=False)
    assert keep == {"high"}


def test_zero_everywhere_keeps_nothing_of_ended_trials():
    checkpoints = [SimpleNamespace(id="a", trial_id=1, batches=10)]
    assert checkpoints_to_keep(checkpoints, {1: {10: 0.1}}, save_experiment_best=0, save_trial_best=0,
                               save_trial_latest=0, smaller_is_better=True) == set()


def test_the_end_still_keeps_what_a_trial_that_has_not_ended_may_start_from(storage, tmp_path):
    # keep nothing by the rules; yet a PAUSED trial keeps its latest (both at its highest step), and the parent of a
    # PBT child that has no checkpoint of its own keeps all of its checkpoints
    book = Book(storage, tmp_path / "checkpoints", gc_config(0, 0, 0))
    paused = book.trial(1, state="PAUSED")
    parent = book.trial(2, state="COMPLETED")
    book.trial(3, state="PENDING", parent_request_id=2)
    done = book.trial(4, state="COMPLETED")
    for name, trial_id, batches in (("P1", paused, 10), ("P2", paused, 20), ("P3", paused, 20),
                                    ("Q1", parent, 10), ("Q2", parent, 20), ("D1", done, 10)):
        book.checkpoint(name, trial_id, batches)
    collect_garbage(storage, book.experiment_id, book.config)
    assert book.on_disk() == {"P2", "P3", "Q1", "Q2"}


def test_a_recorded_path_not_named_after_its_checkpoint_is_never_removed(storage, tmp_path, caplog):
    book = Book(storage, tmp_path / "checkpoints", gc_config(0, 0, 0))
    trial = book.trial(1)
    precious = tmp_path / "precious"
    precious.mkdir()
    storage.add_checkpoint(trial, "odd", path=str(precious), batches=10, epochs=0, length=10, metadata={})
    with caplog.at_level(logging.WARNING, logger="hpt_core.checkpoint_gc"):
        assert collect_garbage(storage, book.experiment_id, book.config) == []
    assert precious.is_dir() and "not named after it" in caplog.text


def test_a_checkpoint_whose_folder_is_already_gone_is_still_marked(storage, tmp_path):
    book = Book(storage, tmp_path / "checkpoints", gc_config(0, 0, 0))
    book.checkpoint("gone", book.trial(1), 10)
    (tmp_path / "checkpoints" / book.names["gone"] / "weights.bin").unlink()
    (tmp_path / "checkpoints" / book.names["gone"]).rmdir()
    assert book.named(collect_garbage(storage, book.experiment_id, book.config)) == {"gone"}
    assert storage.get_checkpoint(book.names["gone"]).state == "DELETED"


# --- removing superseded checkpoints while the experiment runs ----------------------------------


def test_superseded_checkpoints_of_ended_trials_go_early_and_nothing_else(storage, tmp_path):
    # keep 1 experiment best, 1 best and 1 latest a trial. A has ended; B runs; C is paused; D (ended) is the
    # parent of E, a PBT child that has no checkpoint yet.
    book = Book(storage, tmp_path / "checkpoints", gc_config(1, 1, 1))
    trial_a, trial_b = book.trial(1), book.trial(2, state="RUNNING")
    trial_c, trial_d = book.trial(3, state="PAUSED"), book.trial(4)
    book.trial(5, state="PENDING", parent_request_id=4)
    for name, trial_id, batches in (("A1", trial_a, 10), ("A2", trial_a, 20), ("A3", trial_a, 30),
                                    ("A4", trial_a, 40), ("B1", trial_b, 10), ("B2", trial_b, 20),
                                    ("C1", trial_c, 10), ("C2", trial_c, 20), ("D1", trial_d, 10),
                                    ("D2", trial_d, 20)):
        book.checkpoint(name, trial_id, batches)
    for trial_id, batches, value in ((trial_a, 10, 0.5), (trial_a, 20, 0.1), (trial_a, 30, 0.3),
                                     (trial_b, 10, 0.9), (trial_c, 10, 0.9), (trial_d, 10, 0.9)):
        book.validation(trial_id, batches, value)

    removed = collect_superseded(storage, book.experiment_id, book.config)

    # A: A2 is its best (and the experiment's best of ended trials), A4 its latest; A1 and A3 can never be kept.
    # B and C have not ended; D's checkpoints are what its child E will start from.
    assert book.named(removed) == {"A1", "A3"}
    assert book.on_disk() == set(book.names) - {"A1", "A3"}


def test_a_checkpoint_is_not_superseded_while_too_few_ended_ones_beat_it(storage, tmp_path):
    # keep the 2 best of the experiment, nothing a trial: A1 is 2nd among ended trials' checkpoints, so it stays
    book = Book(storage, tmp_path / "checkpoints", gc_config(2, 0, 0))
    trial_a = book.trial(1)
    for name, batches in (("A1", 10), ("A2", 20), ("A3", 30)):
        book.checkpoint(name, trial_a, batches)
    for batches, value in ((10, 0.2), (20, 0.1), (30, 0.3)):
        book.validation(trial_a, batches, value)
    assert book.named(collect_superseded(storage, book.experiment_id, book.config)) == {"A3"}


retention = st.integers(min_value=0, max_value=3)


@st.composite
def experiments(draw):
    """Trials with checkpoints and validations, some ended, and what the running ones still add before the end."""
    trials, checkpoints, validations, later, later_validations = [], [], {}, [], {}
    for trial_id in range(1, draw(st.integers(1, 4)) + 1):
        ended = draw(st.booleans())
        trials.append(SimpleNamespace(id=trial_id, request_id=trial_id, parent_request_id=None,
                                      state="COMPLETED" if ended else "RUNNING"))
        for index in range(draw(st.integers(0, 4))):
            batches = draw(st.sampled_from([10, 20, 30, 40]))
            checkpoint = SimpleNamespace(id=f"{trial_id}-{index}", trial_id=trial_id, batches=batches)
            checkpoints.append(checkpoint)
            if draw(st.booleans()):
                validations.setdefault(trial_id, {})[batches] = draw(st.sampled_from([0.1, 0.2, 0.3]))
        if not ended:
            for index in range(draw(st.integers(0, 3))):
                batches = draw(st.sampled_from([40, 50, 60]))
                later.append(SimpleNamespace(id=f"{trial_id}-later-{index}", trial_id=trial_id, batches=batches))
                if draw(st.booleans()):
                    later_validations.setdefault(trial_id, {})[batches] = draw(st.sampled_from([0.1, 0.2, 0.3]))
    return trials, checkpoints, validations, later, later_validations


@settings(max_examples=300, deadline=None)
@given(experiments(), retention, retention, retention, st.booleans())
def test_what_goes_early_is_never_what_the_end_would_keep(experiment, best, trial_best, latest, smaller):
    trials, checkpoints, validations, later, later_validations = experiment
    retention_settings = {"save_experiment_best": best, "save_trial_best": trial_best, "save_trial_latest": latest,
                          "smaller_is_better": smaller}
    early = superseded_checkpoints(checkpoints, validations, trials, **retention_settings)
    final_validations = {trial_id: {**validations.get(trial_id, {}), **later_validations.get(trial_id, {})}
                         for trial_id in {*validations, *later_validations}}
    final_keep = checkpoints_to_keep(checkpoints + later, final_validations, **retention_settings)
    assert not early & final_keep
    assert not early & checkpoints_still_needed(checkpoints, trials)


# --- for real: an experiment's own checkpoints ----------------------------------------------------

def test_a_real_experiment_keeps_each_trials_first_checkpoint_at_its_last_step(tmp_path):
    # 2 trials of 3 epochs (10 batches each), checkpointing every epoch and (policy all) after the validation at
    # epoch 3: checkpoints at batches 10, 20, 30, 30. Only step 30 has a validation. Keeping 1 best and 1 latest
    # a trial (and 1 of the experiment), each trial keeps its first checkpoint at step 30: it is its best (the
    # older of two equals) and its latest (the older of two at the highest step).
    run = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "0"}).run(
        {"name": "grid", "max_length": {"epochs": 3}},
        {"quality": {"type": "categorical", "vals": [0.5, 2.0]}, "checkpoint_each_epoch": True},
        checkpoint_policy="all",
        checkpoint_storage={"save_trial_latest": 100})  # the run's own collection at its end keeps them all
    assert run.state == "COMPLETED"
    storage, experiment_id = run.storage, run.experiment_id
    before = storage.checkpoints(experiment_id=experiment_id)
    assert sorted(c.batches for c in before) == [10, 10, 20, 20, 30, 30, 30, 30]

    strict = hpt_core.load_config({**storage.get_experiment(experiment_id).config, "checkpoint_storage": {
        "save_experiment_best": 1, "save_trial_best": 1, "save_trial_latest": 1}})
    collect_garbage(storage, experiment_id, strict)

    after = storage.checkpoints(experiment_id=experiment_id)
    first_at_30 = {}
    for checkpoint in before:  # oldest first
        if checkpoint.batches == 30:
            first_at_30.setdefault(checkpoint.trial_id, checkpoint.id)
    assert {c.id for c in after} == set(first_at_30.values())
    assert {Path(c.path).name for c in before if Path(c.path).exists()} == set(first_at_30.values())
