"""The 500s the fuzzers found, each pinned where it was fixed."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from dashboards.layouts import WIDGET_METRICS, WIDGET_UNKNOWN_METRIC, WIDGET_UNKNOWN_TYPE, layout_validate


@pytest.mark.parametrize("value", [{}, {"a": 1}, [], ["kpi"]])
def test_a_widget_type_that_is_not_text_is_a_field_error(value):
    # Was TypeError (unhashable) from `value in WIDGET_METRICS`: a 500 on POST, PUT and PATCH of templates.
    with pytest.raises(ValidationError) as error:
        layout_validate([{"type": value, "metric": "orders"}])
    choices = ", ".join(WIDGET_METRICS)
    assert error.value.message_dict == {
        "layout": [WIDGET_UNKNOWN_TYPE.format(position=1, value=value, choices=choices)]
    }


@pytest.mark.parametrize("value", [{}, {"a": 1}, [], ["orders"]])
def test_a_widget_metric_that_is_not_text_is_a_field_error(value):
    with pytest.raises(ValidationError) as error:
        layout_validate([{"type": "kpi", "metric": value}])
    choices = ", ".join(WIDGET_METRICS["kpi"])
    assert error.value.message_dict == {
        "layout": [WIDGET_UNKNOWN_METRIC.format(position=1, value=value, type="kpi", choices=choices)]
    }
