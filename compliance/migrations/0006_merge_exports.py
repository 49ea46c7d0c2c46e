"""Joins the audit exports (wt-export's 0003) and the holds and retention chain (0003 to 0005), built in parallel."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("compliance", "0003_audit_exports"), ("compliance", "0005_retention")]

    operations = []
