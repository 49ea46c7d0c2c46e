"""The portfolio API's body, typed for the schema (drf-spectacular) and the clients generated from it.

Like the metrics API (dashboards/api/serializers.py), these describe what the view sends — the selector's dict
through `jsonable`: decimals as strings, dates and times as ISO strings — and are not run on it; the tests check
real bodies against the schema."""

from rest_framework import serializers

from agencies.portfolio import PROBLEM_FILTERS, SORT_KEYS
from analytics.choices import FreshnessStatus
from dashboards.api.serializers import DateRangeQuerySerializer, Money, RangeSerializer, Ratio


class PortfolioQuerySerializer(DateRangeQuerySerializer):
    """Dates are UTC calendar days (the stores are in many time zones)."""

    group = serializers.IntegerField(required=False, help_text="A saved group's id: only its stores, and their totals.")
    sort = serializers.ChoiceField(choices=list(SORT_KEYS), required=False, default="name")
    dir = serializers.ChoiceField(
        choices=["asc", "desc"], required=False, help_text="Default: asc for name, desc for the figures."
    )
    problem = serializers.ChoiceField(
        choices=list(PROBLEM_FILTERS), required=False, help_text="Only the stores with (or without) a problem."
    )


class PortfolioKpisSerializer(serializers.Serializer):
    """One period's figures. The cost figures are null where the grant hides costs (and without spend)."""

    net_revenue = Money()
    orders = serializers.IntegerField()
    ad_spend = Money(allow_null=True)
    mer = Ratio(help_text="Net revenue / ad spend.")
    new_customer_cac = Money(allow_null=True, help_text="Ad spend / new customers.")


class PortfolioKpiChangeSerializer(serializers.Serializer):
    """Relative change against the comparison period (0.1 is +10 %); null where undefined."""

    net_revenue = Ratio()
    orders = Ratio()
    ad_spend = Ratio()
    mer = Ratio()
    new_customer_cac = Ratio()


class PortfolioSourceSerializer(serializers.Serializer):
    source = serializers.CharField()
    label = serializers.CharField()
    landed_at = serializers.DateTimeField(allow_null=True, help_text="When its data last landed; null: not yet.")
    status = serializers.ChoiceField(choices=FreshnessStatus.choices)


class PortfolioFreshnessSerializer(serializers.Serializer):
    data_as_of = serializers.DateTimeField(allow_null=True, help_text="The stalest connected source's last landing.")
    status = serializers.ChoiceField(choices=[*FreshnessStatus.values, "not_connected"])
    sources = PortfolioSourceSerializer(many=True)


class PortfolioStoreSerializer(serializers.Serializer):
    merchant_id = serializers.IntegerField()
    name = serializers.CharField()
    currency = serializers.CharField(help_text="The store's figures are in its own currency.")
    timezone = serializers.CharField()
    can_see_costs = serializers.BooleanField()
    has_data = serializers.BooleanField()
    converted = serializers.BooleanField(help_text="False: no exchange rate for some day; left out of the blend.")
    current = PortfolioKpisSerializer()
    comparison = PortfolioKpisSerializer(allow_null=True)
    change = PortfolioKpiChangeSerializer(allow_null=True)
    freshness = PortfolioFreshnessSerializer()
    problems = serializers.ListField(child=serializers.CharField())


class PortfolioBlendedSerializer(serializers.Serializer):
    """In the agency's reporting currency; cost figures only over the stores whose costs may be seen."""

    current = PortfolioKpisSerializer()
    comparison = PortfolioKpisSerializer(allow_null=True)
    change = PortfolioKpiChangeSerializer(allow_null=True)
    stores = serializers.IntegerField(help_text="Stores in the revenue and order totals.")
    cost_stores = serializers.IntegerField(help_text="Stores in ad spend, MER and CAC.")
    left_out = serializers.ListField(child=serializers.IntegerField(), help_text="Stores with no exchange rate.")
    costs_hidden = serializers.ListField(child=serializers.IntegerField())
    notes = serializers.ListField(child=serializers.CharField())


class PortfolioGroupSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class PortfolioResponseSerializer(serializers.Serializer):
    range = RangeSerializer()
    currency = serializers.CharField(help_text="The agency's reporting currency.")
    group = PortfolioGroupSerializer(allow_null=True)
    blended = PortfolioBlendedSerializer()
    stores = PortfolioStoreSerializer(many=True)
