from django.db import models


class WidgetType(models.TextChoices):
    KPI = "kpi", "KPI tile"
    TIMESERIES = "timeseries", "Daily chart"
    COHORT_HEATMAP = "cohort_heatmap", "Cohort heat map"
    ATTRIBUTION_TABLE = "attribution_table", "Attribution table"
    ENGAGEMENT_TABLE = "engagement_table", "Email & SMS table"


class WidgetWidth(models.TextChoices):
    NORMAL = "normal", "Normal"
    WIDE = "wide", "Full width"
