from django.db import models
from django.db.models.functions import Lower

from accounts.models import Merchant


class DashboardTemplate(models.Model):
    """A saved dashboard layout (an ordered list of widgets) owned by a merchant; agencies will own some later."""

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="dashboard_templates")
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
            models.UniqueConstraint("merchant", Lower("name"), name="dashboard_template_unique_name_per_merchant")
        ]

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"
