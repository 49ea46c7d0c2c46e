"""Validators for merchant fields; messages are constants so tests can assert them."""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache

import pycountry
from django.core.exceptions import ValidationError

SHOP_DOMAIN_INVALID = "Enter the shop's myshopify.com domain, e.g. my-store.myshopify.com."
TIMEZONE_INVALID = "Enter an IANA time zone name, e.g. America/New_York."
CURRENCY_INVALID = "Enter an ISO 4217 currency code, e.g. USD."
KEY_INVALID = "Use 1-40 lowercase letters, digits or underscores, starting with a letter."

# Shopify store handles: letters, digits and hyphens, not starting or ending with a hyphen.
_SHOP_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])?\.myshopify\.com$")
# The key names the merchant's raw schema (raw_<key>): a safe, unquoted PostgreSQL identifier.
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def validate_shop_domain(value: str) -> None:
    if not _SHOP_DOMAIN.match(value or ""):
        raise ValidationError(SHOP_DOMAIN_INVALID, code="invalid_shop_domain")


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    if value not in _timezones():
        raise ValidationError(TIMEZONE_INVALID, code="invalid_timezone")


def validate_currency(value: str) -> None:
    # pycountry matches case-insensitively; the stored code must be the canonical upper-case one.
    if not value or not (len(value) == 3 and value.isupper()) or pycountry.currencies.get(alpha_3=value) is None:
        raise ValidationError(CURRENCY_INVALID, code="invalid_currency")


def validate_merchant_key(value: str) -> None:
    if not _KEY.match(value or ""):
        raise ValidationError(KEY_INVALID, code="invalid_key")
