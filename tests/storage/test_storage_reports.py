"""Reports sent by trials: each kept once by (trial, attempt, seq), many trials' reports in one transaction,
and the trial's length_trained kept with them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from hpt_core.group_commit import GroupCommit
from hpt_core.storage import Report, Storage


def report(trial_id: int, attempt: int, seq: int, batches: int = 10) -> Report:
    return Report(trial_id, attempt, seq, "training", {"loss": 1 / seq}, batches=batches, epochs=0, length=batches)


def test_a_report_sent_again_is_kept_once_and_another_attempts_report_with_the_same_seq_is_kept_too(
        storage: Storage, trial_id: int) -> None:
    assert storage.add_reports([report(trial_id, 1, 1), report(trial_id, 1, 2)]) == [True, True]
    assert storage.add_reports([report(trial_id, 1, 2), report(trial_id, 2, 1), report(trial_id, 2, 1)]) == [
        False, True, False]
    stored = storage.metrics(trial_id=trial_id)
    assert [(record.attempt, record.seq) for record in stored] == [(1, 1), (1, 2), (2, 1)]


def test_reports_and_checkpoints_grow_the_trials_length_trained_and_never_shrink_it(
        storage: Storage, trial_id: int) -> None:
    storage.add_reports([report(trial_id, 1, 1, batches=30), report(trial_id, 1, 2, batches=20)])
    assert storage.get_trial(trial_id).length_trained == 30
    storage.add_checkpoint(trial_id, "c1", path="/c1", batches=40, epochs=0, length=40, metadata={})
    storage.add_reports([report(trial_id, 1, 3, batches=35)])
    assert storage.get_trial(trial_id).length_trained == 40


def test_a_group_commit_of_many_threads_keeps_every_report_once(storage: Storage, experiment_id: int) -> None:
    trial_ids = [storage.create_trial(experiment_id, request, {}, seed=0) for request in range(2, 10)]
    commit = GroupCommit(storage)
    sent = [report(trial, 1, seq) for trial in trial_ids for seq in range(1, 26)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        first = [stored for one in pool.map(commit.store, [[r] for r in sent]) for stored in one]
        again = [stored for one in pool.map(commit.store, [sent[index:index + 5] for index in range(0, len(sent), 5)])
                 for stored in one]
    assert len(first) == len(again) == len(sent) and all(first) and not any(again)
    stored = storage.metrics(experiment_id=experiment_id)
    assert sorted((record.trial_id, record.seq) for record in stored) == sorted((r.trial_id, r.seq) for r in sent)
