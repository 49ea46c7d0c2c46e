from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from accounts.models import Merchant


class DashboardTemplate(models.Model):
    """A saved dashboard layout (an ordered list of widgets), owned by a merchant or by an agency.

    An agency's template is applied on the dashboards of any store that granted the agency access; it belongs to
    no store, so no store can edit or delete it, and it outlives any one grant."""

    merchant = models.ForeignKey(
        Merchant, on_delete=models.CASCADE, related_name="dashboard_templates", null=True, blank=True
    )
    agency = models.ForeignKey(
        "agencies.Agency", on_delete=models.CASCADE, related_name="dashboard_templates", null=True, blank=True
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=2000)
    layout = models.JSONField(default=list, help_text="[{type, metric, options}], validated by dashboards.layouts.")
    version = models.PositiveIntegerField(default=1, help_text="Bumped on every update; updates must name it.")
    created_by = models.CharField(max_length=64, help_text="Clerk user id.")
    updated_by = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["merchant_id", Lower("name")]
        constraints = [
            models.UniqueConstraint("merchant", Lower("name"), name="dashboard_template_unique_name_per_merchant"),
            models.UniqueConstraint("agency", Lower("name"), name="dashboard_template_unique_name_per_agency"),
            models.CheckConstraint(
                condition=Q(merchant__isnull=False, agency__isnull=True)
                | Q(merchant__isnull=True, agency__isnull=False),
                name="dashboard_template_one_owner",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"
