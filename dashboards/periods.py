"""Date ranges for dashboards and the metrics API: one parser, so pages and API accept and refuse the same input.

A range is two inclusive local dates in the shop's time zone. Without parameters it is the last 30 days
ending yesterday (today is incomplete); the comparison range is the previous period of equal length.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils import timezone as dj_timezone

MAX_RANGE_DAYS = 731  # two years, leap day included
# The dates a range may name. Wide enough for any store's history (Shopify opened in 2006), and far enough
# from date.min and date.max that every date computed from a range stays a date: the comparison periods
# (up to MAX_RANGE_DAYS before, or a year before), the twelve cohort months before the end
# (selectors.cohort_period), the day after the end for timestamp bounds. Year 1 made all of them raise.
EARLIEST_DATE = dt.date(2000, 1, 1)
LATEST_DATE = dt.date(2099, 12, 31)

DATE_INVALID = "Enter a date as YYYY-MM-DD."
DATE_OUT_OF_RANGE = f"Enter a date between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}."
RANGE_REVERSED = "The end date is before the start date."
RANGE_TOO_LONG = f"A date range can cover at most 2 years ({MAX_RANGE_DAYS} days)."
RANGE_INCOMPLETE = "Give both a start and an end date, or neither."
PRESET_UNKNOWN = "Unknown preset; choose one of: {choices}."
COMPARE_UNKNOWN = "Unknown comparison; choose one of: {choices}."

PRESETS = {
    "last_7_days": "Last 7 days",
    "last_30_days": "Last 30 days",
    "last_90_days": "Last 90 days",
    "month_to_date": "Month to date",
    "last_month": "Last month",
    "last_12_months": "Last 12 months",
}
COMPARISONS = {"previous_period": "Previous period", "previous_year": "Same period last year", "none": "No comparison"}
DEFAULT_PRESET = "last_30_days"
LTV_DEFAULT_PRESET = "last_12_months"  # cohorts are monthly: 30 days would show one or two rows


@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        return Period(start=self.start - dt.timedelta(days=self.days), end=self.start - dt.timedelta(days=1))

    def previous_year(self) -> Period:
        return Period(start=_minus_year(self.start), end=_minus_year(self.end))


@dataclass(frozen=True)
class DateRange:
    """What a dashboard or API request asked for, validated."""

    current: Period
    comparison: Period | None
    preset: str  # "" for a custom range
    compare: str

    def as_query(self) -> dict[str, str]:
        query = {"start": self.current.start.isoformat(), "end": self.current.end.isoformat(), "compare": self.compare}
        if self.preset:
            query = {"preset": self.preset, "compare": self.compare}
        return query


def _minus_year(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def shop_today(timezone: str) -> dt.date:
    return dj_timezone.now().astimezone(zoneinfo.ZoneInfo(timezone)).date()


def preset_period(preset: str, *, today: dt.date) -> Period:
    yesterday = today - dt.timedelta(days=1)
    if preset == "month_to_date":
        # On the 1st there is no complete day this month yet: show the 1st alone rather than nothing.
        return Period(start=today.replace(day=1), end=max(yesterday, today.replace(day=1)))
    if preset == "last_month":
        end = today.replace(day=1) - dt.timedelta(days=1)
        return Period(start=end.replace(day=1), end=end)
    if preset == "last_12_months":
        start = today.replace(day=1)
        start = start.replace(year=start.year - 1)
        return Period(start=start, end=yesterday)
    days = {"last_7_days": 7, "last_30_days": 30, "last_90_days": 90}[preset]
    return Period(start=yesterday - dt.timedelta(days=days - 1), end=yesterday)


def _parse_date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        return None


def date_range_parse(
    params: Mapping[str, str], *, timezone: str, default_preset: str = DEFAULT_PRESET, today: dt.date | None = None
) -> DateRange:
    """Validate `start`, `end`, `preset` and `compare`; raise ValidationError with field errors.

    Explicit dates win over a preset. Every problem is reported at once, keyed by the parameter.
    """
    today = today or shop_today(timezone)
    errors: dict[str, list[str]] = {}
    raw_start, raw_end = params.get("start") or "", params.get("end") or ""
    preset = params.get("preset") or ""
    compare = params.get("compare") or "previous_period"
    if compare not in COMPARISONS:
        errors["compare"] = [COMPARE_UNKNOWN.format(choices=", ".join(COMPARISONS))]
    current: Period | None = None
    if raw_start or raw_end:
        start, end = _parse_date(raw_start), _parse_date(raw_end)
        for field, raw, value in (("start", raw_start, start), ("end", raw_end, end)):
            if raw and value is None:
                errors[field] = [DATE_INVALID]
            elif value is not None and not EARLIEST_DATE <= value <= LATEST_DATE:
                errors[field] = [DATE_OUT_OF_RANGE]
        if errors.get("start") or errors.get("end"):
            start = end = None  # reported; no range checks over dates that are refused
        if start and end:
            if end < start:
                errors["end"] = [RANGE_REVERSED]
            elif (end - start).days + 1 > MAX_RANGE_DAYS:
                errors["end"] = [RANGE_TOO_LONG]
            else:
                current = Period(start=start, end=end)
        elif not (raw_start and raw_end):
            errors["start" if not raw_start else "end"] = [RANGE_INCOMPLETE]
        preset = ""
    elif preset and preset not in PRESETS:
        errors["preset"] = [PRESET_UNKNOWN.format(choices=", ".join(PRESETS))]
    else:
        preset = preset or default_preset
        current = preset_period(preset, today=today)
    if errors:
        raise ValidationError(errors)
    assert current is not None
    comparison = {"previous_period": current.previous, "previous_year": current.previous_year}.get(compare)
    return DateRange(current=current, comparison=comparison() if comparison else None, preset=preset, compare=compare)
