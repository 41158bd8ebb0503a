"""The text `hpt simulate` prints: best value, regret, simulated time, trials per length."""

from __future__ import annotations

from hpt_core.preview import Preview, group_lengths
from hpt_core.searchers.base import SearchMethod
from hpt_core.simulator.benchmarks import Benchmark
from hpt_core.simulator.engine import SimulationResult
from hpt_core.space import flatten


def render_summary(result: SimulationResult, searcher: SearchMethod, benchmark: Benchmark) -> str:
    """What the simulated search found, how long it took in simulated time, and how far each trial trained."""
    ending = "the search ended" if result.shut_down else "the budget ran out"
    lines = [f"{ending} after {duration(result.elapsed)} of simulated time; "
             f"{result.workers} worker{'s' * (result.workers != 1)}, busy {result.utilisation():.0%} of the time"]
    best = result.best()
    if best is None:
        lines.append("no trial reported a validation")
    else:
        hparams = ", ".join(f"{name}={_short(value)}" for name, value in flatten(result.trials[best.request_id].hparams)
                            .items())
        lines.append(f"best {result.metric} {result.value(best):.6g}, trial {best.request_id} after {best.length} "
                     f"{benchmark.unit} at {duration(best.time)} ({hparams})")
        regret = benchmark.regret(result.value(best))
        if regret is not None:
            lines.append(f"regret {regret:.4g} (best known {benchmark.best_value():.6g})")
    table = Preview(group_lengths(searcher, result.lengths()), benchmark.unit).render()
    return "\n".join(lines) + "\n\n" + table


def duration(seconds: float) -> str:
    """Seconds with a larger unit beside them when it helps: `5400 s (1.5 h)`.

    >>> duration(42.0), duration(5400.0), duration(720.0)
    ('42 s', '5400 s (1.5 h)', '720 s (12 min)')
    """
    text = f"{seconds:.0f} s"
    if seconds >= 3600:
        return f"{text} ({seconds / 3600:.1f} h)"
    if seconds >= 120:
        return f"{text} ({seconds / 60:.0f} min)"
    return text


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
