"""Input of the dashboard-template pages, validated before anything reaches the database.

Django's CharField refuses NUL characters (PostgreSQL cannot store them) and config.validators refuses lone
surrogates (they cannot be encoded); the layout is read with config.api.json_loads, which refuses documents
nested deeper than any layout (Python's own parser raises RecursionError on deep ones). The layout's rules
themselves are dashboards.layouts', applied by the services.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from config.api import json_loads
from config.validators import prohibit_surrogates
from dashboards.layouts import MAX_LAYOUT_BYTES
from dashboards.services import NAME_MAX_LENGTH, NAME_REQUIRED

DESCRIPTION_MAX_LENGTH = 2000  # DashboardTemplate.description
VERSION_MAX = 2**31 - 1  # DashboardTemplate.version is a PositiveIntegerField
LAYOUT_NOT_JSON = "The layout must be JSON: a list of widgets."
VERSION_MISSING = "The form must carry the version you read; reload the page."


def _text(max_length: int, **kwargs) -> forms.CharField:
    return forms.CharField(max_length=max_length, validators=[prohibit_surrogates], **kwargs)


class DashboardTemplateSaveForm(forms.Form):
    """ "Save as template": what to copy (`source`), and the new template's name and description."""

    source = _text(200)
    name = _text(NAME_MAX_LENGTH, error_messages={"required": NAME_REQUIRED})
    description = _text(DESCRIPTION_MAX_LENGTH, required=False)


class DashboardTemplateEditForm(forms.Form):
    """The editor on a template's page. The layout is JSON text; the version is the one the page was read at."""

    name = _text(NAME_MAX_LENGTH, required=False)
    description = _text(DESCRIPTION_MAX_LENGTH, required=False)
    # Pretty-printed in the editor, so more characters than the compact bytes layout_validate allows.
    layout = _text(4 * MAX_LAYOUT_BYTES, error_messages={"required": LAYOUT_NOT_JSON})
    version = forms.IntegerField(min_value=1, max_value=VERSION_MAX, error_messages={"required": VERSION_MISSING})

    def clean_name(self) -> str | None:
        # Absent: keep the name. Present but blank: the services refuse it (NAME_REQUIRED).
        return self.cleaned_data["name"] if "name" in self.data else None

    def clean_layout(self) -> Any:
        try:
            return json_loads(self.cleaned_data["layout"])
        except ValueError as exc:
            raise ValidationError(LAYOUT_NOT_JSON, code="invalid") from exc
