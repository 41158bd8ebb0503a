"""Where a trial starts from: its own checkpoint, else its parent's of the round it was cloned at, else the
experiment's warm start, else nothing."""

from __future__ import annotations

from dataclasses import dataclass

from hpt_core.lifecycle import Trial
from hpt_core.lifecycle.restore import parent_checkpoint, ready_to_launch, restore_point


@dataclass(frozen=True)
class Checkpoint:
    id: str
    length: int | None
    batches: int


def child(parent_length: int) -> Trial:
    return Trial(trial_id=9, request_id=4, hparams={}, seed=0, parent_request_id=1, parent_length=parent_length)


PARENT = [Checkpoint("a", 2, 20), Checkpoint("b", 4, 40), Checkpoint("c", 6, 60), Checkpoint("odd", None, 70)]


def test_a_child_starts_from_its_parents_newest_checkpoint_at_or_before_the_length_it_was_cloned_at() -> None:
    assert parent_checkpoint(child(parent_length=4), PARENT).id == "b"
    assert parent_checkpoint(child(parent_length=5), PARENT).id == "b"
    assert parent_checkpoint(child(parent_length=1), PARENT) is None


def test_of_two_checkpoints_at_one_length_the_later_in_batches_wins() -> None:
    assert parent_checkpoint(child(4), [Checkpoint("early", 4, 38), Checkpoint("late", 4, 40)]).id == "late"


def test_the_trials_own_checkpoint_comes_first_and_only_it_continues_the_count() -> None:
    own, parent, source = Checkpoint("own", 3, 30), Checkpoint("parent", 2, 20), Checkpoint("source", 9, 90)
    assert restore_point(own, parent, source).checkpoint is own
    assert restore_point(own, parent, source).warm_start is False
    assert (restore_point(None, parent, source).checkpoint, restore_point(None, parent, source).warm_start) == \
        (parent, True)
    assert restore_point(None, None, source).checkpoint is source
    assert restore_point(None, None, None) is None


def test_a_child_waits_until_its_running_parent_has_checkpointed_the_round_it_was_cloned_at() -> None:
    assert not ready_to_launch(child(4), has_own_checkpoint=False, parent_running=True, parent_checkpoints=[])
    assert not ready_to_launch(child(4), has_own_checkpoint=False, parent_running=True,
                               parent_checkpoints=PARENT[:1])  # round 2 only: round 4's may be on its way
    assert not ready_to_launch(child(4), has_own_checkpoint=False, parent_running=True,
                               parent_checkpoints=[PARENT[0], PARENT[3]])  # a checkpoint of no length says nothing
    assert ready_to_launch(child(4), has_own_checkpoint=False, parent_running=True, parent_checkpoints=PARENT[:2])
    assert ready_to_launch(child(5), has_own_checkpoint=False, parent_running=True, parent_checkpoints=PARENT[:3])


def test_a_child_does_not_wait_for_a_parent_that_ended_or_when_it_has_its_own_checkpoint() -> None:
    assert ready_to_launch(child(4), has_own_checkpoint=False, parent_running=False, parent_checkpoints=[])
    assert ready_to_launch(child(4), has_own_checkpoint=False, parent_running=False, parent_checkpoints=PARENT[:1])
    assert ready_to_launch(child(4), has_own_checkpoint=True, parent_running=True, parent_checkpoints=[])
