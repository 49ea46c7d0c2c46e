from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api import JSONField
from config.validators import prohibit_surrogates
from dashboards.choices import WidgetType, WidgetWidth
from dashboards.layouts import LAYOUT_JSON_SCHEMA
from dashboards.models import DashboardTemplate
from dashboards.periods import COMPARISONS, EARLIEST_DATE, LATEST_DATE, PRESETS
from dashboards.selectors import ATTRIBUTION_MODELS, ENGAGEMENT_CHANNELS, OVERVIEW_KPIS


@extend_schema_field(LAYOUT_JSON_SCHEMA)
class LayoutField(JSONField):
    """Any JSON on input (dashboards.layouts validates it and names the widget at fault), documented with the
    layout's rules."""


class DateRangeQuerySerializer(serializers.Serializer):
    """Documentation of the range parameters; validation is dashboards.periods.date_range_parse (shared with pages)."""

    start = serializers.DateField(
        required=False,
        help_text=f"First day (YYYY-MM-DD, shop time zone), from {EARLIEST_DATE} to {LATEST_DATE}. With `end`.",
    )
    end = serializers.DateField(required=False, help_text="Last day, inclusive. At most 2 years after `start`.")
    preset = serializers.ChoiceField(
        choices=list(PRESETS), required=False, help_text="Used when no dates are given; default last_30_days."
    )
    compare = serializers.ChoiceField(choices=list(COMPARISONS), required=False, default="previous_period")


class AttributionQuerySerializer(DateRangeQuerySerializer):
    model = serializers.ChoiceField(choices=list(ATTRIBUTION_MODELS), required=False, default="last_touch")
    channel = serializers.CharField(required=False, help_text="Only this channel's campaigns.")


class RangeSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    comparison_start = serializers.DateField(allow_null=True)
    comparison_end = serializers.DateField(allow_null=True)
    preset = serializers.CharField()
    compare = serializers.CharField()


class MetricsResponseSerializer(serializers.Serializer):
    """Every metrics response: the resolved range, the shop currency (money values are decimal strings)."""

    range = RangeSerializer()
    currency = serializers.CharField()
    timezone = serializers.CharField()


# --- metric payloads ---------------------------------------------------------------------------------
# These describe, for the schema and the clients generated from it, exactly what the views send: the selectors'
# dicts passed through `jsonable` (views.py), which writes decimals as strings (no float rounding) and dates as
# ISO strings. The views do not run them (the body is cached as built; see views.MetricsApiView); the schemathesis
# run and tests/api_schema check the real bodies against them.


def Money(**kwargs) -> serializers.DecimalField:
    """A decimal sent as a string: the selectors' Decimal, as `str()` writes it ("1234.50", "0.0312")."""
    return serializers.DecimalField(max_digits=None, decimal_places=None, **kwargs)


def Ratio(**kwargs) -> serializers.DecimalField:
    """A ratio (0.0312 is 3.12 %) sent as a decimal string; null when its denominator is zero."""
    return serializers.DecimalField(max_digits=None, decimal_places=None, allow_null=True, **kwargs)


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string", "format": "decimal"}], "nullable": True})
class CountOrDecimalField(serializers.Field):
    """A count (integer) or a money value (decimal string), depending on the metric; null for a cost metric the
    store's grant to your agency hides."""


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string", "format": "decimal"}], "nullable": True})
class KpiValueField(serializers.Field):
    """A KPI's value: an integer for counts, a decimal string for money, ratios and rates; null when undefined."""


class KpisSerializer(serializers.Serializer):
    """The overview's KPIs for one period (dashboards.selectors.OVERVIEW_KPIS)."""

    net_revenue = Money()
    orders = serializers.IntegerField()
    aov = Money(allow_null=True, help_text="Net revenue / orders; null without orders.")
    new_customers = serializers.IntegerField()
    returning_customer_rate = Ratio()
    ad_spend = Money(
        allow_null=True, help_text="Meta + Google Ads spend; null when the store's grant to your agency hides costs."
    )
    mer = Ratio(help_text="Net revenue / ad spend; null without spend, or when the grant hides costs.")
    blended_cac = Money(
        allow_null=True, help_text="Ad spend / customers; null without customers, or when the grant hides costs."
    )
    new_customer_cac = Money(
        allow_null=True,
        help_text="Ad spend / new customers; null without new customers, or when the grant hides costs.",
    )


KpiChangeSerializer = type(
    "KpiChangeSerializer",
    (serializers.Serializer,),
    {
        "__doc__": "The relative change of each KPI against the comparison period (0.1 is +10 %); null where the"
        " comparison value is zero or undefined.",
        **{name: Ratio() for name in OVERVIEW_KPIS},
    },
)


class OverviewKpisSerializer(serializers.Serializer):
    has_data = serializers.BooleanField(help_text="Whether any day of the range has data.")
    current = KpisSerializer()
    comparison = KpisSerializer(allow_null=True, help_text="Null when compare=none.")
    change = KpiChangeSerializer(allow_null=True, help_text="Null when compare=none.")


class OverviewDaySerializer(serializers.Serializer):
    date_day = serializers.DateField()
    orders = serializers.IntegerField()
    net_revenue = Money()
    ad_spend = Money(allow_null=True, help_text="Null when the store's grant to your agency hides costs.")
    new_customers = serializers.IntegerField()


class OverviewResponseSerializer(MetricsResponseSerializer):
    kpis = OverviewKpisSerializer()
    daily = OverviewDaySerializer(many=True, help_text="One row per local day of the range.")


class LtvMonthSerializer(serializers.Serializer):
    month = serializers.IntegerField(help_text="Months since the cohort's first order (0 = the first month).")
    active_customers = serializers.IntegerField()
    orders = serializers.IntegerField()
    net_revenue = Money(allow_null=True)
    cum_net_revenue_per_customer = Money(allow_null=True)
    retention_rate = Ratio()


class LtvCohortSerializer(serializers.Serializer):
    cohort_month = serializers.DateField(help_text="The first day of the cohort's month.")
    cohort_size = serializers.IntegerField()
    cac = Money(
        allow_null=True,
        help_text="The cohort month's ad spend per customer; null without spend, or when the grant hides costs.",
    )
    ltv_to_cac = Ratio(help_text="At the cohort's latest month; null without CAC, or when the grant hides costs.")
    payback_month = serializers.IntegerField(
        allow_null=True, help_text="First month where LTV ≥ CAC, if any; null when the grant hides costs."
    )
    months = LtvMonthSerializer(many=True)


class LtvResponseSerializer(MetricsResponseSerializer):
    cohorts = LtvCohortSerializer(many=True)


class AttributionChannelSerializer(serializers.Serializer):
    channel = serializers.CharField()
    attributed_orders = Money(help_text="Fractional under multi-touch models: a decimal string.")
    attributed_revenue = Money()
    spend = Money(allow_null=True, help_text="Null when the store's grant to your agency hides costs.")
    roas = Ratio(help_text="Attributed revenue / spend; null without spend, or when the grant hides costs.")


class AttributionCampaignSerializer(serializers.Serializer):
    channel = serializers.CharField()
    campaign = serializers.CharField(help_text="utm_campaign; `(none)` when the visits carried none.")
    attributed_orders = Money(allow_null=True)
    attributed_revenue = Money()


class AttributionResponseSerializer(MetricsResponseSerializer):
    model = serializers.ChoiceField(choices=list(ATTRIBUTION_MODELS))
    lookback_days = serializers.IntegerField()
    channels = AttributionChannelSerializer(many=True)
    campaigns = AttributionCampaignSerializer(many=True, help_text="At most 50, by attributed revenue.")


class ModelRevenueSerializer(serializers.Serializer):
    revenue = Money()
    roas = Ratio()


AttributionModelLabelsSerializer = type(
    "AttributionModelLabelsSerializer",
    (serializers.Serializer,),
    {"__doc__": "Each attribution model's label.", **{m: serializers.CharField() for m in ATTRIBUTION_MODELS}},
)
AttributionModelRevenueSerializer = type(
    "AttributionModelRevenueSerializer",
    (serializers.Serializer,),
    {
        "__doc__": "One channel's revenue and ROAS under each model.",
        **{m: ModelRevenueSerializer() for m in ATTRIBUTION_MODELS},
    },
)


class AttributionCompareChannelSerializer(serializers.Serializer):
    channel = serializers.CharField()
    spend = Money(allow_null=True, help_text="Null when the store's grant to your agency hides costs.")
    models = AttributionModelRevenueSerializer()


class AttributionCompareResponseSerializer(MetricsResponseSerializer):
    models = AttributionModelLabelsSerializer()
    lookback_days = serializers.IntegerField()
    channels = AttributionCompareChannelSerializer(many=True)


class EngagementTotalsSerializer(serializers.Serializer):
    """Totals and rates: open, click and unsubscribe rates over delivered; CTOR = unique clicks / unique opens;
    bounce rate over sends. A rate is null where its denominator is zero."""

    channel = serializers.ChoiceField(choices=list(ENGAGEMENT_CHANNELS))
    provider = serializers.CharField()
    message_type = serializers.CharField(help_text="campaign, flow, or other.")
    sends = serializers.IntegerField()
    delivered = serializers.IntegerField()
    unique_opens = serializers.IntegerField()
    unique_clicks = serializers.IntegerField()
    unsubscribes = serializers.IntegerField()
    bounces = serializers.IntegerField()
    open_rate = Ratio()
    click_rate = Ratio()
    ctor = Ratio()
    unsubscribe_rate = Ratio()
    bounce_rate = Ratio()
    attributed_orders = serializers.IntegerField()
    attributed_revenue = Money()


class EngagementMessageSerializer(EngagementTotalsSerializer):
    id = serializers.CharField(help_text="The provider's campaign or flow id.")
    name = serializers.CharField()


class EngagementDaySerializer(serializers.Serializer):
    date_day = serializers.DateField()
    email_sends = serializers.IntegerField()
    sms_sends = serializers.IntegerField()
    email_revenue = Money()
    sms_revenue = Money()


class EngagementResponseSerializer(MetricsResponseSerializer):
    summary = EngagementTotalsSerializer(many=True, help_text="By channel, provider and message type.")
    messages = EngagementMessageSerializer(many=True, help_text="The top 25 campaigns and flows by revenue.")
    daily = EngagementDaySerializer(many=True)


VERSION_MAX = 2**31 - 1  # DashboardTemplate.version is a PositiveIntegerField
# DRF's CharField refuses NUL; these refuse lone surrogates, which JSON can carry and UTF-8 cannot encode.
TEXT_VALIDATORS = [prohibit_surrogates]


class DashboardTemplateSerializer(serializers.ModelSerializer):
    """Input is passed to the services unvalidated beyond types: layout rules live in dashboards.layouts."""

    layout = LayoutField(help_text="Ordered widgets: [{type, metric, options: {title, width}}].")
    version = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=VERSION_MAX,
        help_text="Read-only on create; on update, the version you read (stale → 409).",
    )

    class Meta:
        model = DashboardTemplate
        fields = ["id", "name", "description", "layout", "version", "created_by", "updated_by", "created_at",
                  "updated_at"]  # fmt: skip
        read_only_fields = ["id", "created_by", "updated_by", "created_at", "updated_at"]
        extra_kwargs = {"name": {"validators": TEXT_VALIDATORS}, "description": {"validators": TEXT_VALIDATORS}}


class DashboardTemplateUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=100, validators=TEXT_VALIDATORS)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000, validators=TEXT_VALIDATORS)
    layout = LayoutField(required=False)
    version = serializers.IntegerField(
        min_value=1, max_value=VERSION_MAX, help_text="The version you read; a stale one answers 409."
    )


class WidgetOptionsSerializer(serializers.Serializer):
    title = serializers.CharField(required=False, allow_blank=True)
    width = serializers.ChoiceField(choices=WidgetWidth.choices, required=False)


KPI_KINDS = sorted({kind for _, kind in OVERVIEW_KPIS.values()})
ATTRIBUTION_MODEL_CHOICES = list(ATTRIBUTION_MODELS)


class KpiWidgetDataSerializer(serializers.Serializer):
    label = serializers.CharField()
    kind = serializers.ChoiceField(choices=KPI_KINDS, help_text="How to format the value.")
    value = KpiValueField()
    change = Ratio(help_text="Against the comparison period; null when compare=none or undefined.")
    lower_is_better = serializers.BooleanField()


class TimeseriesPointSerializer(serializers.Serializer):
    date_day = serializers.DateField()
    value = CountOrDecimalField()


# What `data` holds for each widget type (and metric): one of these, as dashboards.selectors.dashboard_widget_list
# builds it. anyOf, not oneOf: an empty list is a valid body of every list shape.
WIDGET_DATA = {
    "kpi": KpiWidgetDataSerializer,
    "timeseries": TimeseriesPointSerializer(many=True),
    "cohort_heatmap": LtvCohortSerializer(many=True),
    "attribution_table (a model)": AttributionChannelSerializer(many=True),
    "attribution_table (comparison)": AttributionCompareChannelSerializer(many=True),
    "engagement_table (summary)": EngagementTotalsSerializer(many=True),
    "engagement_table (messages)": EngagementMessageSerializer(many=True),
}


class WidgetDataField(serializers.Field):
    """The widget's live data; its shape follows the widget's type and metric (WIDGET_DATA)."""


class WidgetDataScheme(OpenApiSerializerFieldExtension):
    target_class = WidgetDataField

    def map_serializer_field(self, auto_schema, direction):
        shapes = []
        for shape in WIDGET_DATA.values():
            if isinstance(shape, serializers.ListSerializer):
                shapes.append({"type": "array", "items": auto_schema.resolve_serializer(shape.child, direction).ref})
            else:
                shapes.append(auto_schema.resolve_serializer(shape, direction).ref)
        return {"anyOf": shapes, "description": "By type: " + "; ".join(WIDGET_DATA) + " (in this order)."}


class AppliedWidgetSerializer(serializers.Serializer):
    position = serializers.IntegerField(help_text="1-based, in the layout's order.")
    type = serializers.ChoiceField(choices=WidgetType.choices)
    metric = serializers.CharField()
    options = WidgetOptionsSerializer()
    data = WidgetDataField()
    hidden = serializers.CharField(
        required=False,
        help_text="Present (\"Hidden by the store's grant\") when the widget's metric is a cost your agency's grant"
        " hides; its figures are then null.",
    )


class DashboardApplyResponseSerializer(MetricsResponseSerializer):
    template = DashboardTemplateSerializer()
    widgets = AppliedWidgetSerializer(many=True)


class StarterTemplateSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    layout = LayoutField()
