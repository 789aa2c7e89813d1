"""Triggers of recurring runs: KFP cron (6 fields with seconds, or 5), `@every`, and periodic intervals."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from kubeflow_bridge.local.kfp.query import bad_request

_MACROS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_EVERY = re.compile(r"^@every\s+((?:\d+(?:\.\d+)?(?:h|m|s|ms))+)$")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _field(text: str, low: int, high: int, names: dict[str, int], what: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.lower().split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"bad step {step_text!r} in the {what} field")
            step = int(step_text)
        if part in ("*", "?"):
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _num(a, names, what), _num(b, names, what)
        else:
            start = _num(part, names, what)
            end = high if step > 1 else start
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise ValueError(f"{part!r} is outside {low}-{high} in the {what} field")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _num(text: str, names: dict[str, int], what: str) -> int:
    if text in names:
        return names[text]
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number in the {what} field")
    return int(text)


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression; `next_after` gives the next firing time (UTC)."""

    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_any: bool
    weekday_any: bool
    every: float | None = None

    @classmethod
    def parse(cls, expr: str) -> Cron:
        text = expr.strip()
        match = _EVERY.match(text)
        if match:
            total = sum(
                float(n) * _UNIT[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", match.group(1))
            )
            if total <= 0:
                raise bad_request(f"cron {expr!r}: @every needs a positive duration")
            empty: frozenset[int] = frozenset()
            return cls(empty, empty, empty, empty, empty, empty, True, True, every=total)
        text = _MACROS.get(text, text)
        fields = text.split()
        if len(fields) == 5:
            fields = ["0", *fields]
        if len(fields) != 6:
            raise bad_request(
                f"cron {expr!r}: use 6 fields 'second minute hour day-of-month month day-of-week' "
                "(KFP's format, e.g. '0 0 * * * *') or 5 standard fields"
            )
        try:
            weekdays = _field(fields[5], 0, 7, _DAYS, "day-of-week")
            return cls(
                seconds=_field(fields[0], 0, 59, {}, "second"),
                minutes=_field(fields[1], 0, 59, {}, "minute"),
                hours=_field(fields[2], 0, 23, {}, "hour"),
                days=_field(fields[3], 1, 31, {}, "day-of-month"),
                months=_field(fields[4], 1, 12, _MONTHS, "month"),
                weekdays=frozenset(d % 7 for d in weekdays),
                day_any=fields[3] in ("*", "?"),
                weekday_any=fields[5] in ("*", "?"),
            )
        except ValueError as exc:
            raise bad_request(f"cron {expr!r}: {exc}") from exc

    def _day_ok(self, t: dt.datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.day_any or self.weekday_any:
            return dom and dow
        return dom or dow

    def next_after(self, after: float) -> float | None:
        if self.every is not None:
            return after + self.every
        t = dt.datetime.fromtimestamp(int(after) + 1, dt.UTC)
        limit = t + dt.timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + dt.timedelta(days=32)).replace(day=1)
                continue
            if not self._day_ok(t):
                t = t.replace(hour=0, minute=0, second=0) + dt.timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + dt.timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t = t.replace(second=0) + dt.timedelta(minutes=1)
                continue
            if t.second not in self.seconds:
                t = t + dt.timedelta(seconds=1)
                continue
            return t.timestamp()
        return None


def parse_interval(text: object) -> float:
    try:
        seconds = float(str(text))
    except ValueError as exc:
        raise bad_request(f"periodic_schedule.interval_second {text!r} is not a number of seconds") from exc
    if seconds <= 0:
        raise bad_request("periodic_schedule.interval_second must be positive")
    return seconds
