"""The trial state machine's rules, without a process, a channel or a database.

Each test drives a `TrialMachine` over a real search method and reads what it wrote to its books
(an in-memory record of the effects) and the states of its trials.
"""

from __future__ import annotations

from typing import Any

import pytest

import hpt_core
from hpt_core.errors import SearcherError
from hpt_core.lifecycle import EndReason, Trial, TrialMachine
from hpt_core.operations import Close, Create, ValidateAfter, operation_to_dict
from hpt_core.replay import EventLog, ReplayMismatch
from hpt_core.searchers.base import SearchMethod
from hpt_core.testing.scripted import ScriptedSearch


class MemoryBooks:
    """The machine's effects, kept in lists: records (the event log), trial rows and ended trials."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.rows: dict[int, dict[str, Any]] = {}
        self.ended: list[tuple[int, str, str]] = []
        self.restarts: list[int] = []

    def record_event(self, name: str, args: list[Any]) -> None:
        self.records.append(("event", {"name": name, "args": args}))

    def record_operation(self, operation: Any) -> None:
        self.records.append(("operation", operation_to_dict(operation)))

    def create_trial(self, request_id: int, hparams: dict[str, Any], seed: int, parent_request_id: int | None) -> int:
        trial_id = 100 + request_id
        self.rows[trial_id] = {"request_id": request_id, "hparams": hparams, "parent": parent_request_id}
        return trial_id

    def update_trial(self, trial: Trial, **fields: Any) -> None:
        self.rows[trial.trial_id].update(fields)

    def end_trial(self, trial: Trial, reason: str) -> None:
        self.ended.append((trial.request_id, trial.state, reason))

    def restarting(self, trial: Trial, returncode: int) -> None:
        self.restarts.append(trial.request_id)

    def events(self) -> list[tuple[str, list[Any]]]:
        return [(payload["name"], payload["args"]) for kind, payload in self.records if kind == "event"]


def experiment(searcher: dict[str, Any], **fields: Any) -> hpt_core.ExperimentConfig:
    return hpt_core.load_config({"entrypoint": "python train.py", "max_restarts": 1,
                                 "searcher": {"metric": "loss", **searcher},
                                 "hyperparameters": {"lr": {"type": "double", "minval": 0.0, "maxval": 1.0}},
                                 **fields})


def machine_for(config: hpt_core.ExperimentConfig, searcher: SearchMethod | None = None,
                books: MemoryBooks | None = None) -> TrialMachine:
    searcher = searcher or hpt_core.create_searcher(config, seed=3)
    return TrialMachine(config, searcher, books or MemoryBooks(), seed=3)


SINGLE = {"name": "single", "max_length": {"epochs": 4}}


def started(machine: TrialMachine, request_id: int = 1) -> Trial:
    trial = machine.trials[request_id]
    machine.launched(trial, trial.attempt + 1)
    return trial


def validate(machine: TrialMachine, trial: Trial, loss: float, epochs: int) -> dict[str, Any]:
    machine.reported(trial, "validation", {"loss": loss}, batches=epochs * 10, epochs=epochs)
    return machine.decision(trial)


# --- operations ----------------------------------------------------------------------------------


def test_create_and_validate_after_make_a_pending_trial_whose_target_the_trial_is_told_in_its_unit() -> None:
    config = experiment({"name": "single", "max_length": {"records": 250}}, records_per_epoch=100)
    machine = machine_for(config)
    machine.dispatch("initial_operations")
    trial = machine.trials[1]
    assert (trial.state, trial.target, machine.pending) == ("PENDING", 250, [1])
    assert machine.books.events()[:2] == [("initial_operations", []), ("on_trial_created", [1])]
    machine.launched(trial, 1)
    assert machine.decision(trial) == {"decision": "continue", "checkpoint": False, "target": 3}
    assert machine.units.to_searcher(batches=0, epochs=3) == 300


def test_each_event_is_recorded_before_the_operations_it_produced() -> None:
    machine = machine_for(experiment(SINGLE))
    machine.dispatch("initial_operations")
    kinds = [(kind, payload.get("name") or payload.get("type")) for kind, payload in machine.books.records]
    assert kinds == [("event", "initial_operations"), ("operation", "Create"), ("operation", "ValidateAfter"),
                     ("event", "on_trial_created")]


@pytest.mark.parametrize("operations, problem", [
    ([ValidateAfter(42, 5)], "request id 42 was never created"),
    ([Close(7)], "request id 7 was never created"),
    ([Create(1, {}), ValidateAfter(1, 5), ValidateAfter(1, 3)], "a length must not go backwards"),
    ([Create(1, {}), ValidateAfter(1, 0)], "a length must be a whole number ≥ 1"),
    ([Create(1, {}), Create(1, {})], "request id 1 was created before"),
    ([Create(2, {}, checkpoint=9)], "its checkpoint names request id 9, which was never created"),
    ([hpt_core.searchers.Shutdown(), Create(1, {})], "the method has already sent its Shutdown"),
    ([Create(1, {}), Close(1), ValidateAfter(1, 4)], "the method closed that trial"),
    (["ValidateAfter"], "that is not an operation"),
])
def test_an_operation_that_breaks_the_protocol_is_refused_naming_the_method_and_the_operation(
        operations: list[Any], problem: str) -> None:
    config = experiment(SINGLE)
    machine = machine_for(config, ScriptedSearch(config.searcher, config.space, operations))
    with pytest.raises(SearcherError) as refused:
        machine.dispatch("initial_operations")
    assert "search method 'scripted'" in str(refused.value) and problem in str(refused.value)
    assert "initial_operations" in str(refused.value)


def test_a_search_method_that_raises_is_reported_with_its_name_and_the_event() -> None:
    config = experiment(SINGLE)
    searcher = ScriptedSearch(config.searcher, config.space, [])
    searcher.initial_operations = lambda: {}["missing"]  # type: ignore[method-assign]
    with pytest.raises(SearcherError, match=r"search method 'scripted' raised KeyError in initial_operations\(\)"):
        machine_for(config, searcher).dispatch("initial_operations")


def test_a_search_that_waits_on_nothing_without_a_shutdown_is_a_searcher_error() -> None:
    config = experiment(SINGLE)
    machine = machine_for(config, ScriptedSearch(config.searcher, config.space, [Create(1, {}), ValidateAfter(1, 4)]))
    machine.dispatch("initial_operations")
    trial = started(machine)
    validate(machine, trial, 0.5, epochs=4)
    machine.exited(trial, 0)
    assert trial.state == "PAUSED"
    with pytest.raises(SearcherError, match="waiting on nothing and sent no Shutdown"):
        machine.finished()


# --- outcomes of an exit -------------------------------------------------------------------------


def test_a_trial_that_reaches_its_length_is_closed_and_completed_and_the_search_shuts_down() -> None:
    machine = machine_for(experiment(SINGLE))
    machine.dispatch("initial_operations")
    trial = started(machine)
    assert validate(machine, trial, 0.5, epochs=4)["decision"] == "stop"
    machine.exited(trial, 0)
    assert (trial.state, trial.length_done, trial.length_trained) == ("COMPLETED", 4, 4)
    assert machine.books.ended == [(1, "COMPLETED", EndReason.COMPLETED_LENGTH)]
    assert machine.finished() and machine.final_state() == "COMPLETED"


@pytest.mark.parametrize("flag, state, reason, exited", [
    ("invalid_hp", "CANCELED", EndReason.INVALID_HP, "INVALID_HP"),
    ("stop_requested", "COMPLETED", EndReason.EARLY_STOP, "USER_REQUESTED_STOP"),
    ("cancelling", "CANCELED", EndReason.CANCELED, "USER_CANCELED"),
])
def test_a_clean_exit_ends_the_trial_by_the_first_rule_that_applies(flag: str, state: str, reason: str,
                                                                    exited: str) -> None:
    machine = machine_for(experiment(SINGLE))
    machine.dispatch("initial_operations")
    trial = started(machine)
    machine.reported(trial, "training", {"loss": 0.7}, batches=20, epochs=2)
    if flag == "cancelling":
        machine.cancelling = True
    else:
        setattr(trial, flag, True)
    machine.exited(trial, 0)
    assert (trial.state, trial.end_reason, trial.length_trained) == (state, reason, 2)
    assert ("on_trial_exited_early", [1, exited]) in machine.books.events()
    assert machine.books.events()[-1] == ("on_trial_closed", [1])


def test_a_non_finite_searcher_metric_ends_the_trial_as_an_error_without_restarts() -> None:
    machine = machine_for(experiment(SINGLE))
    machine.dispatch("initial_operations")
    trial = started(machine)
    assert validate(machine, trial, float("nan"), epochs=1)["decision"] == "stop"
    machine.exited(trial, 0)
    assert trial.state == "ERROR" and trial.end_reason.startswith(EndReason.INVALID_METRIC)
    assert machine.books.restarts == []


def test_a_crash_restarts_the_trial_until_max_restarts_then_ends_it_as_an_error() -> None:
    machine = machine_for(experiment(SINGLE))  # max_restarts: 1
    machine.dispatch("initial_operations")
    trial = started(machine)
    machine.exited(trial, -9)
    assert (trial.state, trial.restarts, machine.pending, machine.books.restarts) == ("PENDING", 1, [1], [1])
    trial = started(machine)
    machine.reported(trial, "training", {"loss": 0.7}, batches=30, epochs=3)
    machine.exited(trial, 1)
    assert (trial.state, trial.end_reason, trial.length_trained) == ("ERROR", EndReason.ERROR_AFTER_RESTARTS, 3)


def test_a_trial_past_max_trial_time_counts_as_a_crash_even_when_it_exits_cleanly() -> None:
    machine = machine_for(experiment(SINGLE))
    machine.dispatch("initial_operations")
    trial = started(machine)
    machine.ran_too_long(trial)
    machine.exited(trial, 0)
    assert (trial.state, trial.restarts) == ("PENDING", 1)


def asha() -> hpt_core.ExperimentConfig:
    return experiment({"name": "adaptive_asha", "max_length": {"epochs": 4}, "max_trials": 2, "mode": "aggressive",
                       "divisor": 2, "max_concurrent_trials": 2})


def test_a_trial_told_to_pause_that_exits_cleanly_is_paused_and_pending_again_once_promoted() -> None:
    machine = machine_for(asha())
    machine.dispatch("initial_operations")
    first = started(machine, 1)
    assert machine.decision(first)["target"] == 2  # the first rung
    assert validate(machine, first, 0.2, epochs=2)["decision"] == "pause"
    machine.exited(first, 0)
    assert first.state == "PAUSED"
    second = started(machine, 2)
    validate(machine, second, 0.9, epochs=2)
    assert first.state == "PENDING" and first.target == 4 and machine.pending == [1]


def test_a_trial_closed_while_running_ends_when_it_exits_and_is_told_to_stop_meanwhile() -> None:
    config = experiment(SINGLE)
    searcher = ScriptedSearch(config.searcher, config.space, [Create(1, {}), ValidateAfter(1, 4)])
    machine = machine_for(config, searcher)
    machine.dispatch("initial_operations")
    trial = started(machine)
    searcher.on_trial_created = lambda request_id: []  # type: ignore[method-assign]
    machine._apply(Close(1))
    assert trial.state == "RUNNING" and machine.decision(trial)["decision"] == "stop"
    machine.exited(trial, 0)
    assert (trial.state, trial.end_reason) == ("COMPLETED", EndReason.CLOSED_AT_RUNG)


def test_cancel_ends_waiting_trials_and_returns_the_running_ones_to_stop() -> None:
    machine = machine_for(asha())
    machine.dispatch("initial_operations")
    running = started(machine, 1)
    assert machine.cancel() == [running]
    assert machine.trials[2].state == "CANCELED" and machine.pending == []
    assert machine.decision(running)["decision"] == "stop"
    machine.exited(running, 0)
    assert running.state == "CANCELED" and machine.finished() and machine.final_state() == "CANCELED"


def test_a_trial_created_while_cancelling_is_canceled_when_the_experiment_ends() -> None:
    machine = machine_for(experiment({"name": "adaptive_asha", "max_length": {"epochs": 4}, "max_trials": 4,
                                      "mode": "aggressive", "divisor": 2, "max_concurrent_trials": 2}))
    machine.dispatch("initial_operations")
    first, second = started(machine, 1), started(machine, 2)
    machine.cancel()
    validate(machine, first, 0.5, epochs=1)  # a stopping trial's last report: the search method creates trial 3
    assert machine.trials[3].state == "PENDING"
    machine.exited(first, 0)
    machine.exited(second, 0)
    assert machine.finished() and machine.final_state() == "CANCELED"
    assert [trial.state for trial in machine.trials.values()] == ["CANCELED"] * len(machine.trials)
    assert machine.pending == []


def test_at_the_time_limit_paused_trials_complete_and_waiting_ones_are_canceled() -> None:
    machine = machine_for(asha())
    machine.dispatch("initial_operations")
    first = started(machine, 1)
    validate(machine, first, 0.2, epochs=2)
    machine.exited(first, 0)
    machine.time_is_up = True
    assert machine.finished()
    assert [(trial.state, trial.end_reason) for trial in machine.trials.values()] == [
        ("COMPLETED", EndReason.TIME_LIMIT), ("CANCELED", EndReason.TIME_LIMIT)]
    assert machine.final_state() == "COMPLETED"


# --- best and checkpoints ------------------------------------------------------------------------


@pytest.mark.parametrize("smaller_is_better, best", [(True, (0.2, 101)), (False, (0.9, 102))])
def test_best_follows_the_searcher_metric_in_its_direction(smaller_is_better: bool, best: tuple) -> None:
    config = experiment({**asha().searcher.model_dump(exclude_none=True), "smaller_is_better": smaller_is_better})
    machine = machine_for(config)
    machine.dispatch("initial_operations")
    validate(machine, started(machine, 1), 0.2, epochs=2)
    validate(machine, started(machine, 2), 0.9, epochs=2)
    assert machine.best_value() == best


@pytest.mark.parametrize("policy, asked", [("best", [True, False]), ("all", [True, True]), ("none", [False, False])])
def test_the_checkpoint_policy_decides_which_validations_ask_for_a_checkpoint(policy: str, asked: list) -> None:
    machine = machine_for(experiment(SINGLE, checkpoint_policy=policy))
    machine.dispatch("initial_operations")
    trial = started(machine)
    answers = []
    for loss, epochs in ((0.5, 1), (0.6, 2)):  # the second is worse than the first
        answers.append(validate(machine, trial, loss, epochs)["checkpoint"])
        machine.checkpointed(trial, batches=epochs * 10, epochs=epochs)
    assert answers == asked


def test_reaching_the_target_asks_for_a_checkpoint_unless_the_policy_is_none() -> None:
    machine = machine_for(asha())
    machine.dispatch("initial_operations")
    trial = started(machine, 1)
    machine.reported(trial, "validation", {"loss": 0.5}, batches=0, epochs=1)
    machine.reported(trial, "validation", {"loss": 0.6}, batches=0, epochs=2)  # worse, but at the rung
    assert machine.decision(trial)["checkpoint"] is True


def test_length_trained_is_the_furthest_report_or_checkpoint_whatever_the_target() -> None:
    machine = machine_for(asha())
    machine.dispatch("initial_operations")
    trial = started(machine, 1)
    machine.reported(trial, "training", {"loss": 0.5}, batches=0, epochs=3)
    machine.checkpointed(trial, batches=0, epochs=2)
    assert (trial.length_trained, trial.length_done) == (3, 0)  # storage keeps it with each report and checkpoint


# --- PBT children and resume ---------------------------------------------------------------------


def pbt() -> hpt_core.ExperimentConfig:
    return experiment({"name": "pbt", "population_size": 2, "num_rounds": 2, "length_per_round": {"epochs": 2},
                       "replace_function": {"truncate_fraction": 0.5}, "max_concurrent_trials": 1})


def first_round(machine: TrialMachine) -> None:
    machine.dispatch("initial_operations")
    for request_id, loss in ((1, 0.1), (2, 0.9)):
        trial = started(machine, request_id)
        validate(machine, trial, loss, epochs=2)
        machine.exited(trial, 0)


def test_a_pbt_child_starts_from_the_length_its_parent_had_validated_and_the_parent_is_asked_to_checkpoint() -> None:
    machine = machine_for(pbt())
    first_round(machine)
    child = machine.trials[3]
    assert (child.parent_request_id, child.parent_length) == (1, 2)
    assert machine.trials[2].state == "COMPLETED"


def resumed(config: hpt_core.ExperimentConfig, books: MemoryBooks, trials: list[Trial],
            snapshot: dict[str, Any] | None, after: int, searcher: SearchMethod | None = None) -> TrialMachine:
    """A fresh machine loaded as the controller does after a crash: rows, snapshot, then the records after it."""
    machine = machine_for(config, searcher, books)
    fresh = [Trial(trial.trial_id, trial.request_id, trial.hparams, trial.seed, trial.parent_request_id,
                   state=trial.state, end_reason=trial.end_reason, target=trial.target) for trial in trials]
    machine.load(fresh, snapshot, [])
    machine.replay(EventLog(_records(books.records[after:], start=after + 1)))
    return machine


def _records(records: list[tuple[str, dict[str, Any]]], start: int) -> list[Any]:
    class Record:
        def __init__(self, seq: int, kind: str, payload: dict[str, Any]) -> None:
            self.seq, self.kind, self.payload = seq, kind, payload
    return [Record(seq, kind, payload) for seq, (kind, payload) in enumerate(records, start)]


def test_replaying_the_whole_log_restores_a_pbt_childs_restore_length_from_its_parent() -> None:
    config = pbt()
    books = MemoryBooks()
    machine = machine_for(config, books=books)
    first_round(machine)
    again = resumed(config, books, list(machine.trials.values()), snapshot=None, after=0)
    assert again.trials[3].parent_length == 2
    assert {r: t.length_done for r, t in again.trials.items()} == {r: t.length_done for r, t in machine.trials.items()}


def test_a_snapshot_and_the_tail_after_it_rebuild_what_the_whole_log_rebuilds() -> None:
    config = asha()
    books = MemoryBooks()
    machine = machine_for(config, books=books)
    machine.dispatch("initial_operations")
    first = started(machine, 1)
    validate(machine, first, 0.2, epochs=2)
    machine.exited(first, 0)
    snapshot, after = machine.snapshot(), len(books.records)
    second = started(machine, 2)
    validate(machine, second, 0.9, epochs=2)
    from_snapshot = resumed(config, books, list(machine.trials.values()), snapshot, after)
    from_start = resumed(config, books, list(machine.trials.values()), None, 0)
    for again in (from_snapshot, from_start):
        assert again.searcher.state_dict() == machine.searcher.state_dict()
        assert [(t.target, t.length_done, t.close_requested) for t in again.trials.values()] == \
            [(t.target, t.length_done, t.close_requested) for t in machine.trials.values()]
        assert (again.announced, again.told_closed) == (machine.announced, machine.told_closed)


def test_a_search_method_that_now_proposes_differently_is_refused_before_anything_is_written() -> None:
    config = experiment(SINGLE)
    books = MemoryBooks()
    machine = machine_for(config, books=books)
    machine.dispatch("initial_operations")
    recorded, rows = list(books.records), dict(books.rows)
    with pytest.raises(ReplayMismatch) as refusal:
        resumed(config, books, list(machine.trials.values()), None, 0, hpt_core.create_searcher(config, seed=4))
    assert isinstance(refusal.value, SearcherError)  # reported as the search method's failure, not hpt's
    assert str(refusal.value).startswith("record 1: the search method produced other operations for "
                                         "initial_operations() than it recorded: recorded [{")
    assert str(refusal.value).endswith("\nthe search method (its code, or hpt's version) no longer behaves as the one "
                                       "that recorded this experiment; resume the experiment with the version that "
                                       "began it")
    assert (books.records, books.rows) == (recorded, rows)


def test_a_search_method_that_now_asks_for_more_is_refused_before_anything_is_written() -> None:
    config = experiment(SINGLE)
    books = MemoryBooks()
    first = [Create(1, {"lr": 0.5}), ValidateAfter(1, 4)]
    machine = machine_for(config, ScriptedSearch(config.searcher, config.space, first), books)
    machine.dispatch("initial_operations")
    recorded, rows = list(books.records), dict(books.rows)
    more = ScriptedSearch(config.searcher, config.space, [*first, Create(2, {"lr": 0.1}), ValidateAfter(2, 4)])
    with pytest.raises(ReplayMismatch, match=r"^record 1: the search method produced other operations"):
        resumed(config, books, list(machine.trials.values()), None, 0, more)
    assert (books.records, books.rows) == (recorded, rows)


def test_a_replayed_event_that_is_not_the_recorded_one_is_refused_naming_both() -> None:
    log = EventLog(_records([("event", {"name": "on_trial_created", "args": [1]})], start=7))
    with pytest.raises(ReplayMismatch) as refusal:
        log.consume("on_trial_closed", (1,), [])
    assert str(refusal.value).startswith("record 7: hpt replayed on_trial_closed(1,) where the record has "
                                         "on_trial_created(1,)\nhpt's version no longer replays this experiment")


def test_a_snapshot_is_refused_in_the_middle_of_an_event() -> None:
    config = experiment(SINGLE)
    searcher = ScriptedSearch(config.searcher, config.space, [Create(1, {})])
    machine = machine_for(config, searcher)
    snapshots: list[Any] = []
    searcher.on_trial_created = lambda request_id: snapshots.append(machine.snapshot()) or []  # type: ignore
    with pytest.raises(SearcherError, match="a snapshot is taken between events"):
        machine.dispatch("initial_operations")


def test_best_is_rebuilt_from_the_stored_validations_on_load() -> None:
    machine = machine_for(asha())
    machine.load([], None, [(101, {"loss": 0.4}), (102, {"loss": 0.3}), (101, {"loss": float("nan")}),
                            (103, {"other": 1.0})])
    assert machine.best_value() == (0.3, 102)
