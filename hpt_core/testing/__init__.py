"""Test helpers shipped with hpt: a conformance suite for search methods (needs pytest), and
`ScriptedSearch`, a search method that plays a fixed script.

>>> from hpt_core.testing import SearchMethodConformance, drive
"""

from hpt_core.testing.scripted import ScriptedSearch
from hpt_core.testing.searcher_conformance import (
    SCENARIOS,
    ConformanceError,
    Event,
    Scenario,
    SearchMethodConformance,
    SearchRun,
    SimulatedTrial,
    Step,
    check_determinism,
    check_initial_operations_create_a_trial,
    check_operations_target_open_trials,
    check_outcome,
    check_progress,
    check_single_shutdown_after_every_trial_closed,
    check_state_round_trip,
    constant_metric,
    drive,
    random_exits,
    random_metric,
    replay,
)

__all__ = [
    "SCENARIOS",
    "ConformanceError",
    "Event",
    "Scenario",
    "SearchMethodConformance",
    "ScriptedSearch",
    "SearchRun",
    "SimulatedTrial",
    "Step",
    "check_determinism",
    "check_initial_operations_create_a_trial",
    "check_operations_target_open_trials",
    "check_outcome",
    "check_progress",
    "check_single_shutdown_after_every_trial_closed",
    "check_state_round_trip",
    "constant_metric",
    "drive",
    "random_exits",
    "random_metric",
    "replay",
]
