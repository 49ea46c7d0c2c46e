from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api import JSONField
from config.validators import prohibit_surrogates
from dashboards.layouts import LAYOUT_JSON_SCHEMA
from dashboards.models import DashboardTemplate
from dashboards.periods import COMPARISONS, EARLIEST_DATE, LATEST_DATE, PRESETS
from dashboards.selectors import ATTRIBUTION_MODELS


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


class OverviewResponseSerializer(MetricsResponseSerializer):
    kpis = serializers.DictField(help_text="{current: {...}, comparison: {...}|null, change: {...}|null}")
    daily = serializers.ListField(child=serializers.DictField())


class LtvResponseSerializer(MetricsResponseSerializer):
    cohorts = serializers.ListField(child=serializers.DictField())


class AttributionResponseSerializer(MetricsResponseSerializer):
    model = serializers.CharField()
    lookback_days = serializers.IntegerField()
    channels = serializers.ListField(child=serializers.DictField())
    campaigns = serializers.ListField(child=serializers.DictField())


class AttributionCompareResponseSerializer(MetricsResponseSerializer):
    models = serializers.DictField(child=serializers.CharField())
    lookback_days = serializers.IntegerField()
    channels = serializers.ListField(child=serializers.DictField())


class EngagementResponseSerializer(MetricsResponseSerializer):
    summary = serializers.ListField(child=serializers.DictField())
    messages = serializers.ListField(child=serializers.DictField())
    daily = serializers.ListField(child=serializers.DictField())


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


class AppliedWidgetSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    type = serializers.CharField()
    metric = serializers.CharField()
    options = serializers.DictField()
    data = serializers.JSONField()


class DashboardApplyResponseSerializer(MetricsResponseSerializer):
    template = DashboardTemplateSerializer()
    widgets = AppliedWidgetSerializer(many=True)


class StarterTemplateSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    layout = LayoutField()
