"""Input of the agency pages: every field through a form, so bad input is a field error (400), never a 500."""

from __future__ import annotations

from django import forms

from agencies.choices import AgencyRole


class AgencyCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    # Checked against ISO 4217 by the service (accounts.validators.validate_currency).
    reporting_currency = forms.CharField(max_length=3, min_length=3, initial="USD")

    def clean_reporting_currency(self) -> str:
        return self.cleaned_data["reporting_currency"].strip().upper()


class InvitationForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=AgencyRole.choices, initial=AgencyRole.MEMBER)


class ClientAssignmentForm(forms.Form):
    merchants = forms.TypedMultipleChoiceField(coerce=int, required=False)

    def __init__(self, *args, client_choices: list[tuple[int, str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["merchants"].choices = client_choices
