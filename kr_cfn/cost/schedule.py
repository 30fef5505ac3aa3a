"""Weekly average of an autoscaled service's capacity under Application Auto Scaling scheduled actions.

A week repeats, so the average over a month is the average over one week; time zones only
shift the week and do not change the average (daylight-saving weeks aside).
Cron fields follow https://docs.aws.amazon.com/autoscaling/application/userguide/scheduled-scaling-using-cron-expressions.html
(minutes hours day-of-month month day-of-week year; day-of-week 1-7 = SUN-SAT).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WEEK_MINUTES = 7 * 24 * 60
_DOW = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_CRON = re.compile(r"^cron\((.+)\)$")


class UnsupportedScheduleError(ValueError):
    """A schedule whose weekly pattern the model does not compute (``at()``, ``rate()``, dates, months)."""


@dataclass(frozen=True)
class Action:
    """One scheduled action: when it fires and the capacity bounds it sets (None: unchanged)."""

    schedule: str
    min_capacity: int | None
    max_capacity: int | None


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> list[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
        if part in ("*", "?"):
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = (names or {}).get(a, None) or int(a), (names or {}).get(b, None) or int(b)
        else:
            start = (names or {}).get(part, None) or int(part)
            end = high if step > 1 else start
        if not (low <= start <= high and low <= end <= high):
            raise UnsupportedScheduleError(f"{text}: outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return sorted(values)


def firings(schedule: str) -> list[int]:
    """Minutes after Monday 00:00 at which ``schedule`` fires in a week."""
    match = _CRON.match(schedule.strip())
    if not match:
        raise UnsupportedScheduleError(f"{schedule}: only cron() schedules are modelled")
    parts = match.group(1).split()
    if len(parts) != 6:
        raise UnsupportedScheduleError(f"{schedule}: expected 6 cron fields")
    minute, hour, dom, month, dow, year = parts
    if dom not in ("*", "?") or month != "*" or year not in ("*", "?"):
        raise UnsupportedScheduleError(f"{schedule}: day-of-month, month and year must be * or ?")
    try:
        minutes = _field(minute, 0, 59)
        hours = _field(hour, 0, 23)
        days = _field(dow.upper(), 1, 7, _DOW)
    except ValueError as exc:
        raise UnsupportedScheduleError(f"{schedule}: {exc}") from None
    out = []
    for day in days:
        monday_based = (day - 2) % 7  # 1=SUN -> 6, 2=MON -> 0
        out += [monday_based * 1440 + h * 60 + m for h in hours for m in minutes]
    return sorted(out)


def segments(base_min: int, base_max: int, actions: list[Action]) -> list[tuple[float, int, int]]:
    """(share of the week, min, max) pieces of a week; raises UnsupportedScheduleError for schedules it cannot place."""
    events = sorted((t, a) for a in actions for t in firings(a.schedule))
    if not events:
        return [(1.0, base_min, base_max)]
    lo, hi = base_min, base_max
    for _, a in events:  # one week to reach the steady state at Monday 00:00
        lo, hi = (
            a.min_capacity if a.min_capacity is not None else lo,
            a.max_capacity if a.max_capacity is not None else hi,
        )
    out: list[tuple[float, int, int]] = []
    last = 0
    for t, a in events:
        if t > last:
            out.append(((t - last) / WEEK_MINUTES, lo, hi))
        lo, hi = (
            a.min_capacity if a.min_capacity is not None else lo,
            a.max_capacity if a.max_capacity is not None else hi,
        )
        last = t
    out.append(((WEEK_MINUTES - last) / WEEK_MINUTES, lo, hi))
    return [s for s in out if s[0] > 0]
