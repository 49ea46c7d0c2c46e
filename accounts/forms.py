"""Input of the accounts pages. Every page input goes through a form: bad input is a field error, never a 500."""

from __future__ import annotations

from django import forms
from django.core.validators import RegexValidator
from django.utils.http import url_has_allowed_host_and_scheme

USER_ID_INVALID = "Choose one of the demo users."
# Clerk user ids are `user_` and base62; the sandbox's demo users add underscores (user_demo_owner).
_USER_ID = RegexValidator(r"\Auser_[A-Za-z0-9_]{1,59}\Z", USER_ID_INVALID, code="invalid_user_id")


class DevSignInForm(forms.Form):
    """The local sign-in: which demo user, and where to go afterwards (a path on this site, else "/")."""

    user_id = forms.CharField(
        max_length=64,
        validators=[_USER_ID],
        error_messages={"required": USER_ID_INVALID, "max_length": USER_ID_INVALID},
    )
    next = forms.CharField(required=False)

    def clean_next(self) -> str:
        return safe_next_path(self.cleaned_data.get("next", ""))


def safe_next_path(value: str) -> str:
    """`value` when it is a path on this site, else "/": never an open redirect (`//evil`, `/\\evil`, `https:`)."""
    if value.startswith("/") and url_has_allowed_host_and_scheme(value, allowed_hosts=None, require_https=False):
        return value
    return "/"
