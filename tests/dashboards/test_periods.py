import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from dashboards import periods
from dashboards.periods import Period, date_range_parse

TODAY = dt.date(2026, 3, 15)


def parse(**params):
    return date_range_parse(params, timezone="America/New_York", today=TODAY)


def errors_of(**params) -> dict:
    with pytest.raises(ValidationError) as exc:
        parse(**params)
    return exc.value.message_dict


def test_default_is_the_last_30_days_ending_yesterday_against_the_previous_30():
    dr = parse()
    assert dr.current == Period(dt.date(2026, 2, 13), dt.date(2026, 3, 14))
    assert dr.comparison == Period(dt.date(2026, 1, 14), dt.date(2026, 2, 12))
    assert (dr.preset, dr.compare) == ("last_30_days", "previous_period")


def test_explicit_dates_win_over_a_preset_and_compare_with_last_year():
    dr = parse(start="2024-02-29", end="2024-03-01", preset="last_7_days", compare="previous_year")
    assert dr.current == Period(dt.date(2024, 2, 29), dt.date(2024, 3, 1))
    assert dr.comparison == Period(dt.date(2023, 2, 28), dt.date(2023, 3, 1))
    assert dr.preset == ""


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("last_7_days", Period(dt.date(2026, 3, 8), dt.date(2026, 3, 14))),
        ("month_to_date", Period(dt.date(2026, 3, 1), dt.date(2026, 3, 14))),
        ("last_month", Period(dt.date(2026, 2, 1), dt.date(2026, 2, 28))),
        ("last_12_months", Period(dt.date(2025, 3, 1), dt.date(2026, 3, 14))),
    ],
)
def test_presets(preset, expected):
    assert parse(preset=preset).current == expected


def test_no_comparison():
    assert parse(compare="none").comparison is None


def test_bad_dates_are_field_errors():
    assert errors_of(start="2026-13-01", end="yesterday") == {
        "start": [periods.DATE_INVALID],
        "end": [periods.DATE_INVALID],
    }


def test_reversed_range():
    assert errors_of(start="2026-03-10", end="2026-03-01") == {"end": [periods.RANGE_REVERSED]}


def test_range_over_two_years():
    assert errors_of(start="2024-01-01", end="2026-01-02") == {"end": [periods.RANGE_TOO_LONG]}
    assert parse(start="2024-01-01", end="2025-12-31").current.days == 731


def test_half_a_range_and_unknown_choices():
    assert errors_of(start="2026-03-01") == {"end": [periods.RANGE_INCOMPLETE]}
    assert set(errors_of(preset="forever", compare="nope")) == {"preset", "compare"}
