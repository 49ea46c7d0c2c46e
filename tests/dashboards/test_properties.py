"""Generated input over the dashboards' parsers and every form of dashboards/ and connectors/ (issue 12, item 4).

Each property: whatever the input (any text, NUL, lone surrogates, numbers beyond bigint, dates from year 1
to 9999, JSON-shaped values of any shape), the answer is a valid result that is safe to compute with and to
store, or field errors — never another exception. Deterministic (derandomize) and bounded, so the suite
runs the same examples every time in a few seconds.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json

import pytest
from django import forms
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import connectors.forms
import dashboards.forms
from config.api import MAX_JSON_DEPTH, json_loads
from config.validators import has_surrogates
from connectors.forms import ApiKeyConnectForm, OAuthCallbackForm, ShopifyAddForm
from dashboards import periods
from dashboards.api.serializers import DashboardTemplateSerializer, DashboardTemplateUpdateSerializer
from dashboards.forms import DashboardTemplateEditForm, DashboardTemplateSaveForm
from dashboards.layouts import MAX_TITLE_LENGTH, WIDGET_METRICS, layout_validate
from dashboards.selectors import cohort_period

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples on every run
    suppress_health_check=[HealthCheck.too_slow],
)

# Any character, surrogates included, with the ones that broke things weighted in.
any_char = st.one_of(
    st.sampled_from(["\x00", "\ud800", "\udfff", "\t", "\r", "\n", " ", "=", "-", "@", "{", "[", '"', "\\", "é"]),
    st.characters(exclude_categories=()),
)
any_text = st.text(alphabet=any_char, max_size=30)
huge_numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.just("99999999999999999999"),
    st.just("9" * 5000),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)
field_text = st.one_of(any_text, huge_numbers, st.text(alphabet="ab\x00", min_size=95, max_size=2100))


def storable(text: str) -> bool:
    return "\x00" not in text and not has_surrogates(text)


def assert_field_errors_only(errors, fields) -> None:
    assert errors, "invalid without an error"
    assert set(errors) <= set(fields), errors
    for messages in errors.values():
        for message in messages:
            str(message).encode("utf-8")  # renderable: input is never echoed raw


# --- the date-range parser -----------------------------------------------------------------------------

any_date = st.dates()  # year 1 to 9999
edge_dates = st.one_of(
    st.dates(dt.date(1999, 11, 1), dt.date(2000, 3, 1)),
    st.dates(dt.date(2099, 10, 1), dt.date(2100, 2, 1)),
    st.sampled_from([dt.date.min, dt.date.max, dt.date(1, 12, 31), dt.date(9999, 1, 1)]),
    st.dates(dt.date(2024, 1, 1), dt.date(2026, 12, 31)),
)
date_text = st.one_of(
    (any_date | edge_dates).map(dt.date.isoformat),
    (any_date | edge_dates).map(lambda d: d.strftime("%Y%m%d")),
    (any_date | edge_dates).map(lambda d: f" {d.isoformat()}\n"),
    st.sampled_from(["0000-01-01", "2026-02-30", "2026-W01-1", "yesterday", ""]),
    field_text,
)
choices = {
    "preset": st.one_of(st.sampled_from(list(periods.PRESETS)), any_text),
    "compare": st.one_of(st.sampled_from(list(periods.COMPARISONS)), any_text),
}


def _coherent(start: dt.date, days: int) -> dict:
    """A start and an end a plausible distance apart, so the range checks pass and what follows is reached."""
    end = start + dt.timedelta(days=min(days, (dt.date.max - start).days))
    return {"start": start.isoformat(), "end": end.isoformat()}


range_params = st.one_of(
    st.fixed_dictionaries({}, optional={"start": date_text, "end": date_text, **choices}),
    st.tuples(
        st.builds(_coherent, any_date | edge_dates, st.integers(0, periods.MAX_RANGE_DAYS + 2)),
        st.fixed_dictionaries({}, optional=choices),
    ).map(lambda pair: {**pair[0], **pair[1]}),
)


@PROPERTY
@given(
    params=range_params,
    today=st.dates(periods.EARLIEST_DATE, periods.LATEST_DATE),
    default=st.sampled_from(list(periods.PRESETS)),
)
def test_the_date_range_parser_answers_a_computable_range_or_field_errors(params, today, default):
    try:
        dr = periods.date_range_parse(params, timezone="America/New_York", default_preset=default, today=today)
    except ValidationError as exc:
        assert_field_errors_only(exc.message_dict, ("start", "end", "preset", "compare"))
        return
    current = dr.current
    assert current.start <= current.end and current.days <= periods.MAX_RANGE_DAYS
    if not dr.preset:
        assert current.start >= periods.EARLIEST_DATE and current.end <= periods.LATEST_DATE
    # What the pages, exports and API compute from a range never leaves the calendar.
    current.previous(), current.previous_year(), cohort_period(current)
    # The range's own query parses back to itself (the links and CSV buttons carry it).
    again = periods.date_range_parse(dr.as_query(), timezone="America/New_York", default_preset=default, today=today)
    assert again == dr


# --- the template-layout validator ----------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), any_text),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=20,
)
widget_types = st.one_of(st.sampled_from(list(WIDGET_METRICS)), json_values)
metrics = st.one_of(st.sampled_from(sorted({m for ms in WIDGET_METRICS.values() for m in ms})), json_values)
titles = st.one_of(any_text, st.text(alphabet="ab\x00", min_size=98, max_size=102), json_values)
widths = st.one_of(st.sampled_from(["normal", "wide"]), json_values)
options = st.one_of(
    st.fixed_dictionaries({}, optional={"title": titles, "width": widths}),
    st.dictionaries(any_text, json_values, max_size=3),
    json_values,
)
widgets = st.one_of(
    st.fixed_dictionaries({"type": widget_types, "metric": metrics}, optional={"options": options}),
    st.dictionaries(st.sampled_from(["type", "metric", "options", "colour", "\ud800", "\x00"]), json_values),
    json_values,
)
layouts = st.one_of(st.lists(widgets, max_size=6), json_values, st.lists(st.just({"type": "kpi"}), min_size=51))

# Layouts of known widgets with any title: most pass the structural checks, so the title rules are reached.
well_formed_layouts = st.lists(
    st.sampled_from([(kind, metric) for kind, ms in WIDGET_METRICS.items() for metric in ms]).flatmap(
        lambda pair: st.fixed_dictionaries(
            {"type": st.just(str(pair[0])), "metric": st.just(pair[1])},
            optional={"options": st.fixed_dictionaries({"title": any_text}, optional={"width": widths})},
        )
    ),
    max_size=5,
)


@PROPERTY
@given(layout=st.one_of(well_formed_layouts, layouts))
def test_the_layout_validator_answers_a_storable_layout_or_field_errors(layout):
    try:
        normalised = layout_validate(layout)
    except ValidationError as exc:
        assert_field_errors_only(exc.message_dict, ("layout",))
        return
    assert isinstance(normalised, list)
    for widget in normalised:
        assert set(widget) == {"type", "metric", "options"}
        assert widget["metric"] in WIDGET_METRICS[widget["type"]]
        title = widget["options"].get("title", "")
        assert isinstance(title, str) and len(title) <= MAX_TITLE_LENGTH and storable(title)
    json.dumps(normalised, ensure_ascii=False).encode("utf-8")  # what jsonb gets: encodable, no NUL
    assert "\\u0000" not in json.dumps(normalised)


# --- JSON as the API and the layout editor read it ----------------------------------------------------


@PROPERTY
@given(
    text=st.one_of(
        any_text,
        st.integers(1, 3 * MAX_JSON_DEPTH).map(lambda n: "[" * n + "]" * n),
        st.integers(1, 3 * MAX_JSON_DEPTH).map(lambda n: '{"a":' * n + "1" + "}" * n),
        json_values.map(json.dumps),
        st.sampled_from(["[NaN]", "Infinity", '"\\ud800"', '"\\u0000"', "[" * 10_000]),
    )
)
def test_json_loads_answers_a_shallow_value_or_a_value_error(text):
    try:
        value = json_loads(text)
    except ValueError:
        return
    depth, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            depth = max(depth, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    assert depth <= MAX_JSON_DEPTH


# --- every form -----------------------------------------------------------------------------------------

FORMS = [DashboardTemplateSaveForm, DashboardTemplateEditForm, ApiKeyConnectForm, OAuthCallbackForm, ShopifyAddForm]


def test_every_form_of_dashboards_and_connectors_is_generated_here():
    found = {
        obj
        for module in (dashboards.forms, connectors.forms)
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, forms.BaseForm) and obj.__module__ == module.__name__
    }
    assert found == set(FORMS)


def form_data(form_class):
    names = list(form_class.base_fields)
    likely = {
        "source": st.sampled_from(["page:ltv", "starter:retention", "template:1", "template:99999999999999999999"]),
        "layout": st.one_of(layouts.map(json.dumps), st.just("[" * 5000)),
        "version": st.one_of(st.integers(-2, 2**32).map(str), huge_numbers),
        "provider": st.sampled_from(["klaviyo", "attentive", "meta", "google_ads"]),
        "api_key": st.just("pk_" + "a1" * 17),
        "shop": st.sampled_from(["demo-store", "https://Demo-Store.myshopify.com/", "x.myshopify.com.evil.com"]),
    }
    return st.fixed_dictionaries(
        {}, optional={name: st.one_of(field_text, likely[name]) if name in likely else field_text for name in names}
    )


@pytest.mark.parametrize("form_class", FORMS, ids=lambda f: f.__name__)
def test_every_form_answers_storable_data_or_field_errors(form_class):
    @PROPERTY
    @given(data=form_data(form_class))
    def check(data):
        form = form_class(data)
        if not form.is_valid():
            assert_field_errors_only(form.errors, form.base_fields)
            return
        for name, value in form.cleaned_data.items():
            field = form.base_fields[name]
            if isinstance(value, str):
                assert storable(value), name
                assert field.max_length is None or len(value) <= field.max_length, name
            if isinstance(field, forms.IntegerField):
                assert field.min_value <= value <= field.max_value, name
        if form_class is DashboardTemplateEditForm:
            json.dumps(form.cleaned_data["layout"])  # parsed within the depth bound: serialisable again

    check()


# --- the API's serializers ------------------------------------------------------------------------------

serializer_data = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(field_text, st.integers(), st.none()),
        "description": st.one_of(field_text, st.none()),
        "layout": layouts,
        "version": st.one_of(st.integers(-(2**70), 2**70), field_text),
    },
)


@pytest.mark.parametrize("serializer_class", [DashboardTemplateSerializer, DashboardTemplateUpdateSerializer])
def test_the_template_serializers_answer_storable_data_or_field_errors(serializer_class):
    @PROPERTY
    @given(data=serializer_data)
    def check(data):
        serializer = serializer_class(data=data)
        if not serializer.is_valid():
            assert_field_errors_only(serializer.errors, serializer.fields)
            return
        for name in ("name", "description"):
            value = serializer.validated_data.get(name)
            assert value is None or storable(value), name
        version = serializer.validated_data.get("version")
        assert version is None or 1 <= version < 2**31

    check()


# --- through to PostgreSQL ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_what_the_services_accept_postgresql_stores():
    """The forms and serializers are one gate; the services are the other, for every caller. Whatever they
    accept must store and read back unchanged: no NUL or surrogate may reach the database."""
    from django.db import transaction

    from compliance.choices import ActorType
    from compliance.services import Actor
    from dashboards.models import DashboardTemplate
    from dashboards.services import DashboardTemplateConflict, dashboard_template_create
    from tests.accounts.factories import MerchantFactory

    merchant = MerchantFactory()
    actor = Actor(type=ActorType.CLERK_USER, id="user_gen", label="user_gen")

    @settings(PROPERTY, max_examples=60)
    @given(name=field_text, description=field_text, layout=st.one_of(well_formed_layouts, layouts))
    def check(name, description, layout):
        with transaction.atomic():
            try:
                template = dashboard_template_create(
                    merchant=merchant, name=name, description=description, layout=layout, actor=actor
                )
            except ValidationError as exc:
                assert_field_errors_only(exc.message_dict, ("name", "description", "layout"))
                return
            except DashboardTemplateConflict:
                return
            stored = DashboardTemplate.objects.get(pk=template.pk)
            assert (stored.name, stored.description, stored.layout) == (name.strip(), description, template.layout)
            transaction.set_rollback(True)

    check()
