"""What Airbyte source each provider becomes: its sourceType, its configuration (shared/INGESTION.md §3),
the raw-table prefix and exactly the streams the marts read (analytics/raw_schema.py).

Adding a provider is one entry of `SOURCES`. Configurations are built from the decrypted credential at
the moment they are sent and never kept: what is kept (`Pipeline.source_digests`) is an HMAC per leaf,
so the next reconcile PATCHes exactly the leaves that changed (a refreshed token, say) and nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils.crypto import salted_hmac
from django.views.decorators.debug import sensitive_variables

from connectors.choices import Provider
from connectors.crypto import decrypt_secret
from connectors.models import ConnectorCredential

# How far back a new source reads: the LTV cohorts want two years.
HISTORY_DAYS = 730


@dataclass(frozen=True)
class Stream:
    name: str
    sync_mode: str
    cursor: tuple[str, ...] = ()
    primary_key: tuple[tuple[str, ...], ...] = ()

    def configuration(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "syncMode": self.sync_mode}
        if self.cursor:
            body["cursorField"] = list(self.cursor)
        if self.primary_key:
            body["primaryKey"] = [list(key) for key in self.primary_key]
        return body


def _deduped(name: str, cursor: str, *primary_key: str) -> Stream:
    return Stream(name, "incremental_deduped_history", (cursor,), tuple((key,) for key in primary_key or ("id",)))


@dataclass(frozen=True)
class SourceKind:
    source_type: str  # Airbyte's sourceType
    prefix: str  # raw tables are <prefix><stream> (analytics/raw_schema.RAW_TABLES)
    streams: tuple[Stream, ...]
    # The credential's configuration; a store's own source (no credential) is given None.
    configuration: Callable[[ConnectorCredential | None, dt.date], dict[str, Any]]


@sensitive_variables()
def _meta(credential: ConnectorCredential, start: dt.date) -> dict[str, Any]:
    accounts = (credential.metadata or {}).get("ad_accounts") or []
    ids = [str(a.get("id") or "").removeprefix("act_") for a in accounts if isinstance(a, dict)]
    token = decrypt_secret(credential.access_token_enc)
    if settings.META_APP_ID and settings.META_APP_SECRET:
        credentials = {"auth_type": "Client", "client_id": settings.META_APP_ID,
                       "client_secret": settings.META_APP_SECRET, "access_token": token}  # fmt: skip
    else:
        credentials = {"auth_type": "Service", "access_token": token}
    return {
        "account_ids": [i for i in ids if i.isdigit()] or [credential.external_account_id],
        "credentials": credentials,
        "start_date": f"{start.isoformat()}T00:00:00Z",
        "insights_lookback_window": 28,  # Meta restates insights for 28 days
    }


@sensitive_variables()
def _google_ads(credential: ConnectorCredential, start: dt.date) -> dict[str, Any]:
    # The connector renews its own access token from the refresh token: ours is not sent, so our hourly
    # refreshes do not PATCH the source (only a rotated refresh token does).
    customers = [str(c) for c in (credential.metadata or {}).get("customers") or [] if str(c).isdigit()]
    config: dict[str, Any] = {
        "credentials": {
            "developer_token": settings.GOOGLE_ADS_DEVELOPER_TOKEN,
            "client_id": settings.GOOGLE_OAUTH_CLIENT_ID,
            "client_secret": settings.GOOGLE_OAUTH_CLIENT_SECRET,
            "refresh_token": decrypt_secret(credential.refresh_token_enc),
        },
        "start_date": start.isoformat(),
        "conversion_window_days": 14,
    }
    if customers:
        config["customer_id"] = ",".join(customers)
    return config


@sensitive_variables()
def _klaviyo(credential: ConnectorCredential, start: dt.date) -> dict[str, Any]:
    return {"api_key": decrypt_secret(credential.api_key_enc), "start_date": f"{start.isoformat()}T00:00:00Z"}


@sensitive_variables()
def _shopify(credential: ConnectorCredential, start: dt.date) -> dict[str, Any]:
    credentials = {"auth_method": "oauth2.0", "access_token": decrypt_secret(credential.access_token_enc)}
    for key, name in (("client_id", "SHOPIFY_API_KEY"), ("client_secret", "SHOPIFY_API_SECRET")):
        if getattr(settings, name, ""):
            credentials[key] = getattr(settings, name)
    return {"shop": credential.external_account_id, "credentials": credentials, "start_date": start.isoformat()}


# Attentive has no Airbyte source (webhooks, INGESTION.md §5).
SOURCES: dict[str, SourceKind] = {
    Provider.SHOPIFY: SourceKind(
        "shopify",
        "shopify_",
        (
            _deduped("orders", "updated_at"),
            _deduped("order_refunds", "created_at"),
            _deduped("customers", "updated_at"),
            Stream("shop", "full_refresh_overwrite"),
        ),
        _shopify,
    ),
    Provider.META: SourceKind(
        "facebook-marketing",
        "facebook_marketing_",
        (
            _deduped("ads_insights", "date_start", "date_start", "account_id", "ad_id"),
            _deduped("campaigns", "updated_time"),
        ),
        _meta,
    ),
    Provider.GOOGLE_ADS: SourceKind(
        "google-ads",
        "google_ads_",
        (
            # One row per campaign, day, network and device (analytics/raw_schema.py): keyed on campaign and day
            # alone, the destination's dedupe would keep one network x device row of each day and drop the
            # rest of its spend (fct_ad_spend_daily sums cost_micros over them).
            _deduped(
                "campaign",
                "segments.date",
                *("campaign.id", "segments.date", "segments.ad_network_type", "segments.device"),
            ),
            _deduped("customer", "segments.date", "customer.id", "segments.date"),
        ),
        _google_ads,
    ),
    Provider.KLAVIYO: SourceKind(
        "klaviyo",
        "klaviyo_",
        (
            _deduped("events", "datetime"),
            _deduped("metrics", "updated"),
            _deduped("campaigns", "updated_at"),
            _deduped("flows", "updated"),
            _deduped("profiles", "updated"),
        ),
        _klaviyo,
    ),
}


@sensitive_variables()
def _exchange_rates(_credential: None, start: dt.date) -> dict[str, Any]:
    # No `base`: choosing it is a paid plan of the API; the marts convert through whatever base the rows
    # have (a pair's rate is the quotient of both currencies' rates against it). Weekends have no rates
    # (the marts carry the last rate on), so asking for them only spends the plan's quota.
    return {"access_key": settings.EXCHANGE_RATES_ACCESS_KEY, "start_date": start.isoformat(), "ignore_weekends": True}


# A store's own sources, keyed by ingestion.choices.PipelineKind: ours to configure, not a merchant's credential.
EXCHANGE_RATES = SourceKind("exchange-rates", "exchange_rates_", (_deduped("rates", "date", "date"),), _exchange_rates)
STORE_SOURCES: dict[str, SourceKind] = {"exchange_rates": EXCHANGE_RATES}
# The exchange rates sync once a day (a rate per business day).
EXCHANGE_RATES_INTERVAL_SECONDS = 86400


def default_start_date(today: dt.date) -> dt.date:
    return today - dt.timedelta(days=HISTORY_DAYS)


# --- what changed since the last send --------------------------------------------------------------------


def _leaves(configuration: Mapping[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf of a configuration (lists are leaves: Airbyte's merge replaces them whole)."""
    for key, value in configuration.items():
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, (*path, str(key)))
        else:
            yield (*path, str(key)), value


@sensitive_variables()
def digests(configuration: Mapping[str, Any]) -> dict[str, str]:
    """Per leaf path, an HMAC of its value: enough to tell a change, useless to anyone reading the row."""
    return {
        "/".join(path): salted_hmac("ingestion.configuration", json.dumps(value, sort_keys=True)).hexdigest()[:32]
        for path, value in _leaves(configuration)
    }


@sensitive_variables()
def changed_part(configuration: Mapping[str, Any], sent: Mapping[str, str]) -> dict[str, Any]:
    """The subtree of `configuration` whose leaves differ from what was `sent` (empty: nothing to send).

    Airbyte deep-merges a PATCH into the stored configuration, so this subtree is all it needs."""
    now = digests(configuration)
    patch: dict[str, Any] = {}
    for path, value in _leaves(configuration):
        if sent.get("/".join(path)) != now["/".join(path)]:
            node = patch
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = value
    return patch
