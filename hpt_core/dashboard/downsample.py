"""Fewer points for long curves: keep the first, the last, and the lowest and highest of each stretch.

>>> points = [(x, (x * 7) % 10) for x in range(100)]
>>> kept = downsample(points, 12)
>>> len(kept) <= 12, kept[0] == points[0], kept[-1] == points[-1]
(True, True, True)
>>> min(y for _, y in kept) == 0 and max(y for _, y in kept) == 9
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

Point = TypeVar("Point", bound=Sequence[float])

#: The fewest points a curve may be cut to (first, last, and one low and high stretch).
MIN_POINTS = 4


def downsample(points: Sequence[Point], max_points: int) -> list[Point]:
    """At most `max_points` of `points` (in their order): the first and last, and each stretch's extremes.

    The points between the first and last are cut into (max_points - 2) // 2 stretches of equal count;
    each keeps its lowest and highest y, so every extreme of the curve survives.
    """
    if max_points < MIN_POINTS:
        raise ValueError(f"max_points must be at least {MIN_POINTS}, but got {max_points}")
    if len(points) <= max_points:
        return list(points)
    inner = points[1:-1]
    stretches = (max_points - 2) // 2
    kept: list[Point] = [points[0]]
    for index in range(stretches):
        stretch = inner[index * len(inner) // stretches:(index + 1) * len(inner) // stretches]
        if not stretch:
            continue
        low = min(range(len(stretch)), key=lambda place: stretch[place][1])
        high = max(range(len(stretch)), key=lambda place: stretch[place][1])
        kept += [stretch[place] for place in sorted({low, high})]
    kept.append(points[-1])
    return kept
