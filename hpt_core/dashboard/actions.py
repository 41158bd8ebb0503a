"""Pause, activate and cancel an experiment from the dashboard: the running controller follows the state in storage."""

from __future__ import annotations

from hpt_core.controller import EndReason
from hpt_core.runner import controller_alive
from hpt_core.storage import ExperimentState, Storage, TrialState

#: action -> the experiment state it asks for.
ACTIONS = {"pause": ExperimentState.PAUSED, "activate": ExperimentState.ACTIVE, "cancel": ExperimentState.CANCELED}
_ENDED_TRIAL_STATES = {TrialState.COMPLETED, TrialState.CANCELED, TrialState.ERROR}


class ActionRefused(Exception):
    """The experiment is not in a state the action applies to."""


def change_state(storage: Storage, experiment_id: int, action: str) -> str:
    """Carry out `action` (pause, activate or cancel) as `hpt experiment <action>` does; returns the new state.

    An experiment that has ended cannot change. Cancelling one that no controller runs also cancels its
    trials that have not ended.
    """
    wanted = ACTIONS[action]
    experiment = storage.get_experiment(experiment_id)
    if experiment.state not in (ExperimentState.ACTIVE, ExperimentState.PAUSED):
        raise ActionRefused(f"experiment {experiment_id} has ended ({experiment.state}); only an ACTIVE or PAUSED "
                            f"experiment can {action}")
    if wanted is ExperimentState.CANCELED and not controller_alive(storage, experiment_id):
        for trial in storage.list_trials(experiment_id):
            if trial.state not in _ENDED_TRIAL_STATES:
                storage.update_trial(trial.id, state=TrialState.CANCELED.value, end_reason=EndReason.CANCELED)
    storage.set_experiment_state(experiment_id, wanted.value)
    return wanted.value
