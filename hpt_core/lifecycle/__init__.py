"""The runtime core: one pure trial state machine that the controller, the simulator and `preview` drive.

- `driver`: a search method behind the protocol's checks (`SearchDriver`);
- `machine`: the trial lifecycle (`TrialMachine`), its effects going to `Books`;
- `trial`: a trial's record in the machine, its states and end reasons;
- `restore`: where a trial starts from;
- `units`: lengths in the search method's unit and the trial's.
"""

from hpt_core.lifecycle.driver import SearchDriver
from hpt_core.lifecycle.machine import Books, TrialMachine
from hpt_core.lifecycle.trial import TERMINAL_STATES, EndReason, Trial, exited_reason
from hpt_core.lifecycle.units import Units

__all__ = ["Books", "EndReason", "SearchDriver", "TERMINAL_STATES", "Trial", "TrialMachine", "Units",
           "exited_reason"]
