"""Airbyte public API stand-in (shared/INGESTION.md §1), mounted under ``/airbyte``.

Both roots are served: ``<base>/airbyte/v1`` (Airbyte Cloud's ``https://api.airbyte.com/v1``) and
``<base>/airbyte/api/public/v1`` (a self-hosted server's ``/api/public/v1``). Point the app at it with
``AIRBYTE_API_URL=<base>/airbyte/v1``.

What is imitated, from Airbyte's OpenAPI file and controllers:

- ``POST /applications/token`` exchanges application credentials (JSON or form) for a bearer token
  that lives ``token_ttl`` seconds (900 by default, like the server); every other route answers 401
  ``invalid-api-key`` without a live token.
- Sources (Shopify, Facebook Marketing, Google Ads, Klaviyo) and a Postgres destination: create, get,
  list, PATCH (a deep merge, where a leaf sent as ``**********`` keeps the stored secret), PUT, delete.
  Configurations are checked against a per-type spec (required fields, types, ``oneOf`` branches)
  and a failure is a 422 ``unprocessable-entity`` whose ``data.message`` lists each problem; every
  field the connector spec marks ``airbyte_secret`` comes back as ``**********``.
- Connections: create checks the streams against the source type's catalog (an unknown stream is a
  422, a duplicate or an unsupported sync mode a 400) and fills cursor and primary key from it;
  get, list, PATCH, delete (the connection turns ``deprecated``, as Airbyte keeps it).
  ``GET /streams`` lists a source's catalog.
- Jobs: ``POST /jobs`` starts a sync or reset (``clear`` too; ``refresh`` is a 422 as in the public
  API) and answers 409 ``try-again-later`` while another job of the connection is not terminal;
  ``GET /jobs/{id}``, ``GET /jobs`` with filters and paging, ``DELETE /jobs/{id}`` cancels (409
  ``state-conflict`` once terminal). A job goes pending → running (→ incomplete → running, when
  scripted) → succeeded | failed | cancelled. Stages last ``pending_seconds`` / ``running_seconds``
  (configurable; ``null`` holds the job there until a test advances it), and the next jobs' outcomes
  (failure with an error type, a slow job, rows and bytes) can be scripted — see the control routes.

The public JobResponse carries no failure reason (Airbyte reports it in its notifications and the
internal Config API), so a job's ``errorType``/``errorMessage``/``errorOrigin`` are visible to tests
through ``GET /_control/airbyte/jobs/{id}`` and to the app through the workspace's webhook notifications
(§1.7): ``GET``/``PATCH /workspaces/{id}`` keeps a workspace's ``notifications`` (``failure``, ``success``,
... each ``{"email": {"enabled"}, "webhook": {"enabled", "url"}}``), and a sync or reset that ends
``succeeded`` or ``failed`` is POSTed, unsigned like Airbyte's, as §1.7's body to the enabled webhook of
its connection's workspace. A job ended by ``/_control/.../advance`` is delivered before that call
answers (its answer lists the deliveries); one that ends as the API is read (its stage time over) is
delivered by a thread, after the answer, so the app may read the job back from inside its webhook. Every
delivery is listed, without the URL's query string, at ``GET /_control/airbyte/notifications``.

A sync or reset without a scripted outcome is carried out by a worker thread
(``sandbox.providers.airbyte_worker``): it writes the simulated world (``sandbox.world``) into the
connection's Postgres destination by cursor, and the job ends when both its stage time is over and the
worker is done, failing as the worker failed. A scripted outcome that says how the job ends (a status
other than succeeded, rows, bytes, an error) replaces the worker: nothing is written.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import logging
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

import requests
from werkzeug.wrappers import Response

from analytics.raw_schema import RAW_TABLES
from sandbox.providers import airbyte_worker
from sandbox.providers.airbyte_worker import JobPlan, StreamPlan, SyncFailure
from sandbox.routing import Context, Route, json_response, read_json_object
from sandbox.world.world import (
    STREAM_TABLES,
    Clock,
    WorldSettings,
    settings_update,
    world_cache_clear,
    world_identity,
    world_of,
    world_pixel_events,
    world_settings,
    world_start,
)

logger = logging.getLogger("sandbox")
SECRETS_MASK = "**********"
ROOTS = ("v1", "api/public/v1")
TOKEN_TTL = 900
PENDING_SECONDS = 0.5
RUNNING_SECONDS = 2.0
ERRORS_URL = "https://reference.airbyte.com/reference/errors"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
JOB_STATUSES = ("pending", "queued", "running", "incomplete", "failed", "succeeded", "cancelled")
JOB_TYPES = ("sync", "reset", "refresh", "clear")
NAMESPACE_DEFINITIONS = ("source", "destination", "custom_format")
CONNECTION_STATUSES = ("active", "inactive", "deprecated")
SCHEMA_UPDATES = ("ignore", "disable_connection", "propagate_columns", "propagate_fully")
# ConnectionSyncModeEnum of the public API's OpenAPI file (newer servers add update/soft-delete modes).
SYNC_MODES = (
    "full_refresh_overwrite",
    "full_refresh_overwrite_deduped",
    "full_refresh_append",
    "incremental_append",
    "incremental_deduped_history",
)
_ENDING_FIELDS = frozenset({"rowsSynced", "bytesSynced", "errorType", "errorMessage", "errorOrigin"})
_SEQUENCE = itertools.count()  # creation order, for lists (createdAt has only seconds)
ERROR_TYPES = ("config_error", "system_error", "transient_error", "manual_cancellation")
ERROR_ORIGINS = ("source", "destination", "platform", "replication", "airbyte_platform", "normalization")
# NotificationsConfig of the public API (WorkspaceUpdateRequest.notifications); each is a NotificationConfig.
NOTIFICATION_KINDS = ("failure", "success", "connectionUpdate", "connectionUpdateActionRequired", "syncDisabled",
                      "syncDisabledWarning")  # fmt: skip
NOTIFICATION_TIMEOUT_SECONDS = 10.0

# --- connector specs (the fields of INGESTION.md §3), as the JSON-schema subset the validator knows ---


def _s(**kw: Any) -> dict[str, Any]:
    return {"type": "string", **kw}


def _secret(**kw: Any) -> dict[str, Any]:
    return {"type": "string", "airbyte_secret": True, **kw}


def _int(**kw: Any) -> dict[str, Any]:
    return {"type": "integer", **kw}


def _bool() -> dict[str, Any]:
    return {"type": "boolean"}


def _obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


def _one_of(discriminator: str, branches: dict[str, tuple[dict[str, Any], tuple[str, ...]]]) -> dict[str, Any]:
    return {
        "type": "object",
        "discriminator": discriminator,
        "oneOf": {
            value: _obj({discriminator: {"type": "string", "const": value}, **props}, (discriminator, *required))
            for value, (props, required) in branches.items()
        },
    }


DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
DATETIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"

SOURCE_SPECS: dict[str, dict[str, Any]] = {
    "shopify": _obj(
        {
            "shop": _s(pattern=r"^(https?://)?[A-Za-z0-9][A-Za-z0-9-]*(\.myshopify\.com)?/?$"),
            "credentials": _one_of(
                "auth_method",
                {
                    "oauth2.0": ({"client_id": _secret(), "client_secret": _secret(), "access_token": _secret()}, ()),
                    "api_password": ({"api_password": _secret()}, ("api_password",)),
                    "access_token": ({"access_token": _secret()}, ("access_token",)),
                },
            ),
            "start_date": _s(pattern=DATE),
            "bulk_window_in_days": _int(minimum=1),
            "lookback_window_in_days": _int(minimum=0, maximum=30),
            "fetch_transactions_user_id": _bool(),
            "job_termination_threshold": _int(minimum=1),
            "job_checkpoint_interval": _int(minimum=1),
        },
        ("shop",),
    ),
    "facebook-marketing": _obj(
        {
            "account_ids": {"type": "array", "items": _s(pattern=r"^[0-9]+$"), "minItems": 1},
            "credentials": _one_of(
                "auth_type",
                {
                    "Client": (
                        {"client_id": _s(), "client_secret": _secret(), "access_token": _secret()},
                        ("client_id", "client_secret", "access_token"),
                    ),
                    "Service": ({"access_token": _secret()}, ("access_token",)),
                },
            ),
            "start_date": _s(pattern=DATETIME),
            "end_date": _s(pattern=DATETIME),
            "insights_lookback_window": _int(minimum=0, maximum=28),
            "insights_job_timeout": _int(minimum=10, maximum=60),
            "page_size": _int(minimum=1),
            "access_token": _secret(),
            "client_id": _s(),
            "client_secret": _secret(),
        },
        ("account_ids", "credentials"),
    ),
    "google-ads": _obj(
        {
            "credentials": _obj(
                {
                    "developer_token": _secret(),
                    "client_id": _s(),
                    "client_secret": _secret(),
                    "refresh_token": _secret(),
                    "access_token": _secret(),
                },
                ("developer_token", "client_id", "client_secret", "refresh_token"),
            ),
            "customer_id": _s(pattern=r"^[0-9]{10}(,[0-9]{10})*$"),
            "start_date": _s(pattern=DATE),
            "end_date": _s(pattern=DATE),
            "conversion_window_days": _int(minimum=0, maximum=1095),
            "num_workers": _int(minimum=1),
        },
        ("credentials",),
    ),
    "klaviyo": _obj(
        {
            "api_key": _secret(),
            "start_date": _s(pattern=DATETIME),
            "disable_fetching_predictive_analytics": _bool(),
            "num_workers": _int(minimum=1),
        },
        ("api_key",),
    ),
    # source-exchange-rates (exchangeratesapi.io / apilayer): the FX table the marts convert ad spend with.
    "exchange-rates": _obj(
        {
            "access_key": _secret(),
            "start_date": _s(pattern=DATE),
            "base": _s(pattern=r"^[A-Z]{3}$"),
            "ignore_weekends": _bool(),
        },
        ("access_key", "start_date"),
    ),
}

_SSL_KEY = {"client_key_password": _secret()}
DESTINATION_SPECS: dict[str, dict[str, Any]] = {
    "postgres": _obj(
        {
            "host": _s(),
            "port": _int(minimum=0, maximum=65536),
            "database": _s(),
            "schema": _s(),
            "username": _s(),
            "password": _secret(),
            "ssl": _bool(),
            "ssl_mode": _one_of(
                "mode",
                {
                    "disable": ({}, ()),
                    "allow": ({}, ()),
                    "prefer": ({}, ()),
                    "require": ({}, ()),
                    "verify-ca": ({"ca_certificate": _secret(), **_SSL_KEY}, ("ca_certificate",)),
                    "verify-full": (
                        {
                            "ca_certificate": _secret(),
                            "client_certificate": _secret(),
                            "client_key": _secret(),
                            **_SSL_KEY,
                        },
                        ("ca_certificate", "client_certificate", "client_key"),
                    ),
                },
            ),
            "tunnel_method": _one_of(
                "tunnel_method",
                {
                    "NO_TUNNEL": ({}, ()),
                    "SSH_KEY_AUTH": (
                        {"tunnel_host": _s(), "tunnel_port": _int(), "tunnel_user": _s(), "ssh_key": _secret()},
                        ("tunnel_host", "tunnel_port", "tunnel_user", "ssh_key"),
                    ),
                    "SSH_PASSWORD_AUTH": (
                        {
                            "tunnel_host": _s(),
                            "tunnel_port": _int(),
                            "tunnel_user": _s(),
                            "tunnel_user_password": _secret(),
                        },
                        ("tunnel_host", "tunnel_port", "tunnel_user", "tunnel_user_password"),
                    ),
                },
            ),
            "jdbc_url_params": _s(),
            "raw_data_schema": _s(),
            "disable_type_dedupe": _bool(),
            "drop_cascade": _bool(),
            "unconstrained_number": _bool(),
        },
        ("host", "port", "database", "schema", "username"),
    ),
}

# AP mappers/NameToDefinitionMapper.kt
SOURCE_DEFINITIONS = {
    "shopify": "9da77001-af33-4bcd-be46-6252bf9342b9",
    "facebook-marketing": "e7778cfc-e97c-4458-9ecb-b4f2bba8946c",
    "google-ads": "253487c0-2246-43ba-a21f-5116b20a2c50",
    "klaviyo": "95e8cffd-b8c4-4039-968e-d32fb4a69bde",
    "exchange-rates": "e2b40e36-aa0e-4bed-b41b-bcea6fa348b1",  # the connector registry's id
}
DESTINATION_DEFINITIONS = {"postgres": "25c5221d-dce2-4163-ade9-739ef790f503"}


def _stream(name: str, cursor: str | None, primary_key: list[list[str]] | None) -> dict[str, Any]:
    return {"name": name, "cursor": [cursor] if cursor else [], "primary_key": primary_key or []}


# The streams the marts read (analytics/raw_schema.py) plus a few more each connector has.
CATALOGS: dict[str, tuple[dict[str, Any], ...]] = {
    "shopify": (
        _stream("orders", "updated_at", [["id"]]),
        _stream("order_refunds", "created_at", [["id"]]),
        _stream("customers", "updated_at", [["id"]]),
        _stream("products", "updated_at", [["id"]]),
        _stream("transactions", "created_at", [["id"]]),
        _stream("shop", None, [["id"]]),
    ),
    "facebook-marketing": (
        _stream("campaigns", "updated_time", [["id"]]),
        _stream("ad_sets", "updated_time", [["id"]]),
        _stream("ads", "updated_time", [["id"]]),
        _stream("ads_insights", "date_start", [["date_start"], ["account_id"], ["ad_id"]]),
        _stream("ad_account", None, [["account_id"]]),
    ),
    "google-ads": (
        _stream("customer", "segments.date", [["customer.id"], ["segments.date"]]),
        # One row per campaign, day, network and device, as the raw table holds it (analytics/raw_schema.py).
        _stream(
            "campaign",
            "segments.date",
            [["campaign.id"], ["segments.date"], ["segments.ad_network_type"], ["segments.device"]],
        ),
        _stream("ad_group", "segments.date", [["ad_group.id"], ["segments.date"]]),
    ),
    "klaviyo": (
        _stream("campaigns", "updated_at", [["id"]]),
        _stream("events", "datetime", [["id"]]),
        _stream("flows", "updated", [["id"]]),
        _stream("metrics", "updated", [["id"]]),
        _stream("profiles", "updated", [["id"]]),
        _stream("lists", "updated", [["id"]]),
    ),
    "exchange-rates": (_stream("rates", "date", [["date"]]),),  # lands as exchange_rates_rates (prefix exchange_rates_)
}


def stream_sync_modes(stream: dict[str, Any]) -> list[str]:
    modes = ["full_refresh_overwrite", "full_refresh_append"]
    if stream["primary_key"]:
        modes.append("full_refresh_overwrite_deduped")
    if stream["cursor"]:
        modes.append("incremental_append")
        if stream["primary_key"]:
            modes.append("incremental_deduped_history")
    return modes


# --- spec validation, masking, merging --------------------------------------------------------------

_JSON_TYPES = {"string": str, "integer": int, "boolean": bool, "object": dict, "array": list}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for name, kind in (("integer", int), ("number", float), ("string", str), ("object", dict), ("array", list)):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _branch(schema: dict[str, Any], value: dict[str, Any]) -> dict[str, Any] | None:
    return schema["oneOf"].get(value.get(schema["discriminator"]))


def validate(schema: dict[str, Any], value: Any, path: str = "$") -> list[str]:
    """Problems in `value`, worded like Airbyte's JSON-schema validator (networknt)."""
    expected = schema.get("type")
    actual = _json_type(value)
    if expected and actual != expected:
        return [f"{path}: {actual} found, {expected} expected"]
    if "oneOf" in schema:
        branch = _branch(schema, value)
        if branch is None:
            key = schema["discriminator"]
            if key not in value:
                return [f"{path}.{key}: is missing but it is required"]
            return [f"{path}.{key}: does not have a value in the enumeration {sorted(schema['oneOf'])}"]
        return validate(branch, value, path)
    problems: list[str] = []
    if expected == "object":
        missing = [name for name in schema["required"] if name not in value]
        problems += [f"{path}.{name}: is missing but it is required" for name in missing]
        for name, sub in schema["properties"].items():
            if name in value:
                problems += validate(sub, value[name], f"{path}.{name}")
    elif expected == "array":
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{path}: expected at least {schema['minItems']} items but found {len(value)}")
        for index, item in enumerate(value):
            problems += validate(schema.get("items", {}), item, f"{path}[{index}]")
    elif expected == "string":
        if "const" in schema and value != schema["const"]:
            problems.append(f"{path}: must be the constant value '{schema['const']}'")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{path}: does not match the regex pattern {schema['pattern']}")
    elif expected == "integer":
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: must have a minimum value of {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: must have a maximum value of {schema['maximum']}")
    return problems


def mask(schema: dict[str, Any], value: Any) -> Any:
    """A copy of `value` with every field the spec marks ``airbyte_secret`` replaced by the mask."""
    if not isinstance(value, dict) or schema.get("type") != "object":
        return copy.deepcopy(value)
    if "oneOf" in schema:
        branch = _branch(schema, value)
        if branch is None:  # unvalidated shape: mask whatever any branch calls a secret
            properties = {k: v for b in schema["oneOf"].values() for k, v in b["properties"].items()}
            branch = {"type": "object", "properties": properties}
        return mask(branch, value)
    masked = {}
    for name, item in value.items():
        sub = schema["properties"].get(name, {})
        masked[name] = SECRETS_MASK if sub.get("airbyte_secret") and item is not None else mask(sub, item)
    return masked


def deep_merge(stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Objects merge recursively, leaves are overwritten; a leaf sent as the mask keeps the stored value."""
    merged = copy.deepcopy(stored)
    for name, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = deep_merge(merged[name], value)
        elif value == SECRETS_MASK and name in merged:
            continue
        else:
            merged[name] = copy.deepcopy(value)
    return merged


def keep_masked(new: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """`new` as given, except that a leaf sent as the mask takes the stored value at the same place."""
    kept = {}
    for name, value in new.items():
        old = stored.get(name)
        if value == SECRETS_MASK and name in stored:
            kept[name] = copy.deepcopy(old)
        elif isinstance(value, dict) and isinstance(old, dict):
            kept[name] = keep_masked(value, old)
        else:
            kept[name] = copy.deepcopy(value)
    return kept


# --- errors ------------------------------------------------------------------------------------------

PROBLEM_TITLES = {
    400: "bad-request",
    401: "invalid-api-key",
    403: "forbidden",
    404: "resource-not-found",
    409: "state-conflict",
    422: "unprocessable-entity",
}


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.data = status, title, detail, data

    def body(self) -> dict[str, Any]:
        fragment = "409-state-conflict" if self.title == "state-conflict" else self.title
        body: dict[str, Any] = {
            "status": self.status,
            "type": f"{ERRORS_URL}#{fragment}",
            "title": self.title,
            "detail": self.detail,
        }
        if self.data is not None:
            body["data"] = self.data
        return body

    def response(self) -> Response:
        return json_response(self.body(), status=self.status)


def airbyte_error_body(status: int, message: str) -> dict[str, Any]:
    """What Airbyte answers for a status: its problem shape, except the load-shedding 429 (a bare message)."""
    if status == 429:
        return {"message": message}
    title = PROBLEM_TITLES.get(status, "unexpected-problem" if status >= 500 else "bad-request")
    return Problem(status, title, message, {"message": message}).body()


def bad_request(message: str) -> Problem:
    return Problem(400, "bad-request", "The request could not be understood.", {"message": message})


def unprocessable(message: str) -> Problem:
    return Problem(422, "unprocessable-entity", "The body of the request was not understood", {"message": message})


def not_found(resource_type: str, resource_id: Any) -> Problem:
    return Problem(
        404,
        "resource-not-found",
        f"Could not find a resource for: {resource_id}",
        {"resourceType": resource_type, "resourceId": str(resource_id)},
    )


# --- store -------------------------------------------------------------------------------------------


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return text + (f"{secs}S" if secs or text == "PT" else "")


class AirbyteState:
    """Tokens, sources, destinations, connections and jobs of one fake Airbyte workspace set."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.client_id: str | None = None  # None: any non-empty client id/secret pair is accepted
            self.client_secret: str | None = None
            self.token_ttl: float = TOKEN_TTL
            self.pending_seconds: float | None = PENDING_SECONDS
            self.running_seconds: float | None = RUNNING_SECONDS
            self.tokens: dict[str, float] = {}
            self.sources: dict[str, dict[str, Any]] = {}
            self.destinations: dict[str, dict[str, Any]] = {}
            self.connections: dict[str, dict[str, Any]] = {}
            self.jobs: dict[int, dict[str, Any]] = {}
            self.outcomes: deque[dict[str, Any]] = deque()
            self.next_job_id = 1
            self.world = WorldSettings()
            self.clock = Clock()
            self.world_starts: dict[str, dt.date] = {}  # identity -> first simulated day, fixed by its first sync
            self.worker_locks: dict[str, threading.Lock] = {}
            self.workspaces: dict[str, dict[str, Any]] = {}
            self.outbox: list[tuple[str, dict[str, Any]]] = []  # (url, body) of notifications not sent yet
            self.deliveries: list[dict[str, Any]] = []

    # tokens
    def configure(self, options: dict[str, Any]) -> None:
        with self._lock:
            for name in ("client_id", "client_secret"):
                if name in options:
                    setattr(self, name, None if options[name] is None else str(options[name]))
            if "token_ttl" in options:
                self.token_ttl = float(options["token_ttl"])
            for name in ("pending_seconds", "running_seconds"):
                if name in options:
                    setattr(self, name, None if options[name] is None else float(options[name]))

    def issue_token(self, client_id: str, client_secret: str) -> dict[str, Any] | None:
        with self._lock:
            if not client_id or not client_secret:
                return None
            if self.client_id is not None and (client_id, client_secret) != (self.client_id, self.client_secret):
                return None
            token = "ab." + secrets.token_urlsafe(32)
            self.tokens[token] = time.time() + self.token_ttl
            return {"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_ttl)}

    def token_valid(self, token: str) -> bool:
        with self._lock:
            expires_at = self.tokens.get(token)
            return expires_at is not None and expires_at > time.time()

    def expire_tokens(self) -> int:
        with self._lock:
            for token in self.tokens:
                self.tokens[token] = 0.0
            return len(self.tokens)

    # jobs
    def add_outcome(self, outcome: dict[str, Any]) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    def take_outcome(self, connection_id: str) -> dict[str, Any]:
        with self._lock:
            for outcome in self.outcomes:
                if outcome.get("connectionId") in (None, connection_id):
                    if outcome["times"] <= 1:
                        self.outcomes.remove(outcome)
                    else:
                        outcome["times"] -= 1
                    return dict(outcome)
            return {}

    def tick(self, job: dict[str, Any], now: float | None = None) -> None:
        """Move a job along its stages by the clock; a stage without a duration waits for `advance`."""
        now = time.time() if now is None else now
        with self._lock:
            while job["index"] < len(job["stages"]) - 1:
                duration = job["durations"][job["index"]]
                if duration is None or now < job["entered_at"] + duration:
                    break
                at = job["entered_at"] + duration
                if job["index"] + 1 == len(job["stages"]) - 1 and job["worker"] is not None:
                    if job["worked_at"] is None:
                        break  # the worker is still writing: the job stays running
                    at = max(at, job["worked_at"])
                    self._worker_outcome(job)
                self._enter(job, job["index"] + 1, at)

    @staticmethod
    def _worker_outcome(job: dict[str, Any]) -> None:
        """The job ends as its worker's sync ended (unless a test forced the end with `advance(to=...)`)."""
        if job["stages"][-1] == "succeeded" and job["work_error"] is not None:
            job["stages"][-1] = "failed"
            job["error_type"], job["error_message"] = job["work_error"]
            job["error_origin"] = "destination"  # the worker only ever fails writing

    def _enter(self, job: dict[str, Any], index: int, at: float) -> None:
        job["index"], job["entered_at"] = index, at
        status = job["stages"][index]
        if status in TERMINAL:
            job["ended_at"] = at
            job["rows"], job["bytes"] = (job["outcome_rows"], job["outcome_bytes"])
            self._notify(job)

    # workspace notifications (§1.7)
    def workspace(self, workspace_id: str) -> dict[str, Any]:
        """Any workspace id names a workspace (the app is given its id, it does not create one)."""
        with self._lock:
            return self.workspaces.setdefault(
                workspace_id, {"workspaceId": workspace_id, "name": "sandbox", "notifications": {}}
            )

    def _notify(self, job: dict[str, Any]) -> None:
        """Queue the job's success or failure notification for its workspace's webhook, if one is enabled."""
        status = job["stages"][job["index"]]
        kind = {"succeeded": "success", "failed": "failure"}.get(status)
        connection = self.connections.get(job["connectionId"])
        if kind is None or connection is None:
            return
        workspace = self.workspace(connection["workspaceId"])
        webhook = (workspace["notifications"].get(kind) or {}).get("webhook") or {}
        if not webhook.get("enabled") or not webhook.get("url"):
            return
        self.outbox.append((webhook["url"], notification_body(self, workspace, connection, job)))

    def deliver(self) -> list[dict[str, Any]]:
        """POST the queued notifications (outside the lock: the receiver may call the API back)."""
        with self._lock:
            queued, self.outbox = self.outbox, []
        delivered = []
        for url, body in queued:
            record = {"url": url.split("?", 1)[0], "jobId": body["data"]["jobId"],
                      "success": body["data"]["success"]}  # fmt: skip
            try:
                answer = requests.post(url, json=body, timeout=NOTIFICATION_TIMEOUT_SECONDS)
                record["status"] = answer.status_code
            except requests.RequestException as exc:
                record["status"], record["error"] = None, type(exc).__name__
            with self._lock:
                self.deliveries.append(record)
            delivered.append(record)
        return delivered

    def deliver_later(self) -> None:
        with self._lock:
            if not self.outbox:
                return
        threading.Thread(target=self.deliver, name="airbyte-notifications", daemon=True).start()

    def advance(self, job: dict[str, Any], to: str | None) -> None:
        worker = job["worker"]
        if worker is not None and (to == "succeeded" or (to is None and job["index"] + 2 >= len(job["stages"]))):
            worker.join()  # outside the lock: the worker takes it to record each stream it commits
        with self._lock:
            self.tick(job)
            if self.status(job) in TERMINAL:
                raise Problem(409, "state-conflict", "Job is not currently running")
            if to is None:
                if job["index"] + 1 == len(job["stages"]) - 1 and job["worker"] is not None:
                    self._worker_outcome(job)
                self._enter(job, job["index"] + 1, time.time())
                return
            if to in TERMINAL:
                job["stages"][-1] = to
                if to == "failed" and not job["error_type"]:
                    job["error_type"], job["error_message"] = "system_error", "The sync failed."
                self._enter(job, len(job["stages"]) - 1, time.time())
                return
            if to not in job["stages"][job["index"] + 1 :]:
                raise ValueError(f"the job's next stages are {job['stages'][job['index'] + 1 :]}")
            self._enter(job, job["stages"].index(to, job["index"] + 1), time.time())

    def cancel(self, job: dict[str, Any]) -> None:
        with self._lock:
            self.tick(job)
            if self.status(job) in TERMINAL:
                raise Problem(409, "state-conflict", "Job is not currently running")
            job["stages"] = [*job["stages"][: job["index"] + 1], "cancelled"]
            job["error_type"], job["error_message"] = "manual_cancellation", "The sync was cancelled."
            job["cancel_requested"] = True  # the worker stops before its next stream
            job["outcome_rows"], job["outcome_bytes"] = 0, 0
            self._enter(job, job["index"] + 1, time.time())

    @staticmethod
    def status(job: dict[str, Any]) -> str:
        return job["stages"][job["index"]]

    def running_job(self, connection_id: str) -> dict[str, Any] | None:
        with self._lock:
            for job in self.jobs.values():
                if job["connectionId"] == connection_id:
                    self.tick(job)
                    if self.status(job) not in TERMINAL:
                        return job
            return None

    def new_job(
        self, connection_id: str, job_type: str, plan: Callable[[int], JobPlan | None] | None = None
    ) -> dict[str, Any]:
        """A job; without a scripted outcome, `plan(job_id)` gives the work its worker thread does."""
        with self._lock:
            outcome = self.take_outcome(connection_id)
            final = outcome.get("status", "succeeded")
            pending = outcome.get("pendingSeconds", self.pending_seconds)
            running = outcome.get("runningSeconds", self.running_seconds)
            stages, durations = ["pending", "running"], [pending, running]
            if outcome.get("incomplete"):
                stages, durations = [*stages, "incomplete", "running"], [*durations, running, running]
            job = {
                "jobId": self.next_job_id,
                "connectionId": connection_id,
                "jobType": job_type,
                "created_at": time.time(),
                "stages": [*stages, final],
                "durations": [*durations, None],
                "index": 0,
                "ended_at": None,
                "rows": None,
                "bytes": None,
                "outcome_rows": int(outcome.get("rowsSynced", 0)),
                "outcome_bytes": int(outcome.get("bytesSynced", 0)),
                "error_type": outcome.get("errorType") if final == "failed" else None,
                "error_message": outcome.get("errorMessage") if final == "failed" else None,
                "error_origin": outcome.get("errorOrigin") if final == "failed" else None,
            }
            if final == "failed" and not job["error_type"]:
                job["error_type"], job["error_message"] = "system_error", "The sync failed."
            job["entered_at"] = job["created_at"]
            job.update(worker=None, worked_at=None, work_error=None, cancel_requested=False)
            # An outcome that shapes only the timing (a slow job, an incomplete attempt) keeps the worker;
            # one that says how the job ends (failed, cancelled, rows/bytes, an error) replaces it.
            scripted = final != "succeeded" or bool(_ENDING_FIELDS & set(outcome))
            work = plan(job["jobId"]) if plan is not None and not scripted else None
            if work is not None:
                job["worker"] = threading.Thread(
                    target=self._work, args=(job, work), name=f"airbyte-job-{job['jobId']}", daemon=True
                )
            self.next_job_id += 1
            self.jobs[job["jobId"]] = job
            if job["worker"] is not None:
                job["worker"].start()
            self.tick(job)
            return job

    # the worker
    def job_plan(self, connection: dict[str, Any], source: dict[str, Any], destination: dict[str, Any],
                 job_id: int, job_type: str, klaviyo_account: str | None = None,
                 shop_of: Callable[[str], dict[str, Any] | None] = lambda identity: None) -> JobPlan:  # fmt: skip
        """What a job of `connection` will do, copied now: a later PATCH applies to the next job only.

        `shop_of(identity)` is the sandbox Shopify's record of the world's shop, if it has one: the
        merchant then lives in that shop's time zone and currency, as the store the app installed."""
        with self._lock:
            now = self.clock.now()
            identity = world_of(self.world, world_identity(source["type"], source["configuration"], klaviyo_account))
            settings = world_settings(self.world, identity)
            shop = shop_of(identity)
            if shop:
                settings.timezone = shop.get("iana_timezone") or settings.timezone
                settings.currency = shop.get("currency") or settings.currency
            start = self.world_starts.setdefault(identity, world_start(settings, now))
            states = connection.setdefault("world_streams", {})
            streams = []
            for entry in connection["configurations"]["streams"]:
                state = states.setdefault(entry["name"], {"cursor": None, "generation": 0})
                streams.append(
                    StreamPlan(
                        name=entry["name"],
                        sync_mode=entry["syncMode"],
                        primary_key=[airbyte_worker.column_name(p) for p in entry.get("primaryKey", [])],
                        cursor=airbyte_worker.column_name(entry["cursorField"]) if entry.get("cursorField") else None,
                        lo=state["cursor"],
                        generation=state["generation"] + (1 if job_type != "sync" else 0),
                    )
                )
            return JobPlan(
                job_id=job_id,
                job_type="sync" if job_type == "sync" else "reset",
                source_type=source["type"],
                identity=identity,
                settings=settings,
                start=start,
                now=now,
                destination=copy.deepcopy(destination["configuration"]),
                namespace=airbyte_worker.namespace_of(connection, destination["configuration"]),
                prefix=connection.get("prefix") or "",
                streams=streams,
            )

    def _work(self, job: dict[str, Any], plan: JobPlan) -> None:
        connection_id = job["connectionId"]
        with self._lock:
            lock = self.worker_locks.setdefault(connection_id, threading.Lock())
            connection = self.connections.get(connection_id)
            report = {"jobId": job["jobId"], "jobType": job["jobType"], "identity": plan.identity,
                      "now": _iso(plan.now), "streams": {}}  # fmt: skip

        def committed(stream: StreamPlan, stream_report: dict[str, Any]) -> None:
            with self._lock:
                if connection is None:
                    return
                state = connection.setdefault("world_streams", {}).setdefault(
                    stream.name, {"cursor": None, "generation": 0}
                )
                state["generation"] = stream.generation
                state["cursor"] = plan.now if plan.job_type == "sync" else None
                report["streams"][stream.name] = stream_report

        error = None
        with lock:  # a forced end lets the next job start while this one still writes: one at a time
            with self._lock:  # the cursors and generations the previous job left, now that it is done
                states = connection.get("world_streams", {}) if connection is not None else {}
                for stream in plan.streams:
                    state = states.get(stream.name, {"cursor": None, "generation": 0})
                    stream.lo = state["cursor"]
                    stream.generation = state["generation"] + (1 if plan.job_type != "sync" else 0)
            try:
                airbyte_worker.run_job(plan, committed=committed, cancelled=lambda: job["cancel_requested"])
            except SyncFailure as failure:
                error = (failure.error_type, failure.message)
            except Exception as exc:  # a crash is the job's failure, never the server's
                logger.exception("airbyte job %s: the worker crashed", job["jobId"])
                error = ("system_error", f"The sync failed: {type(exc).__name__}")
        with self._lock:
            report["rows"] = sum(s["rows"] for s in report["streams"].values())
            report["bytes"] = sum(s["bytes"] for s in report["streams"].values())
            report["errorType"], report["errorMessage"] = error or (None, None)
            if connection is not None:
                connection["last_sync"], connection["last_plan"] = report, plan
            job["outcome_rows"], job["outcome_bytes"] = report["rows"], report["bytes"]
            if self.status(job) in TERMINAL:  # forced to its end already: show what was written
                job["rows"], job["bytes"] = report["rows"], report["bytes"]
            job["work_error"] = error
            job["worked_at"] = time.time()


# --- response shapes ---------------------------------------------------------------------------------


def source_body(source: dict[str, Any]) -> dict[str, Any]:
    return {
        "sourceId": source["id"],
        "name": source["name"],
        "sourceType": source["type"],
        "definitionId": SOURCE_DEFINITIONS[source["type"]],
        "workspaceId": source["workspaceId"],
        "configuration": mask(SOURCE_SPECS[source["type"]], source["configuration"]),
        "createdAt": source["createdAt"],
        "resourceAllocation": source.get("resourceAllocation"),
    }


def destination_body(destination: dict[str, Any]) -> dict[str, Any]:
    return {
        "destinationId": destination["id"],
        "name": destination["name"],
        "destinationType": destination["type"],
        "definitionId": DESTINATION_DEFINITIONS[destination["type"]],
        "workspaceId": destination["workspaceId"],
        "configuration": mask(DESTINATION_SPECS[destination["type"]], destination["configuration"]),
        "createdAt": destination["createdAt"],
        "resourceAllocation": destination.get("resourceAllocation"),
    }


def connection_body(connection: dict[str, Any]) -> dict[str, Any]:
    body = {
        key: copy.deepcopy(connection[key])
        for key in (
            "connectionId",
            "name",
            "sourceId",
            "destinationId",
            "workspaceId",
            "status",
            "schedule",
            "dataResidency",
            "nonBreakingSchemaUpdatesBehavior",
            "namespaceDefinition",
            "namespaceFormat",
            "prefix",
            "configurations",
            "createdAt",
            "tags",
        )
    }
    if body["namespaceFormat"] is None:
        del body["namespaceFormat"]
    return body


def job_body(state: AirbyteState, job: dict[str, Any]) -> dict[str, Any]:
    state.tick(job)
    status = state.status(job)
    end = job["ended_at"] if job["ended_at"] is not None else time.time()
    return {
        "jobId": job["jobId"],
        "status": status,
        "jobType": job["jobType"],
        "startTime": _iso(job["created_at"]),
        "connectionId": job["connectionId"],
        "lastUpdatedAt": _iso(job["ended_at"]),
        "duration": None if status == "pending" else iso_duration(end - job["created_at"]),
        "bytesSynced": job["bytes"],
        "rowsSynced": job["rows"],
    }


def notification_body(
    state: AirbyteState, workspace: dict[str, Any], connection: dict[str, Any], job: dict[str, Any]
) -> dict[str, Any]:
    """§1.7's body: Slack text and blocks, and the `data` of SyncSummary (failure fields only on a failure)."""
    source = state.sources.get(connection["sourceId"]) or {}
    destination = state.destinations.get(connection["destinationId"]) or {}
    success = state.status(job) == "succeeded"
    seconds = int((job["ended_at"] or time.time()) - job["created_at"])
    ui = f"https://cloud.airbyte.com/workspaces/{workspace['workspaceId']}"

    def ref(kind: str, resource_id: str, name: str) -> dict[str, Any]:
        return {"id": resource_id, "name": name, "url": f"{ui}/{kind}/{resource_id}"}

    data: dict[str, Any] = {
        "workspace": {"id": workspace["workspaceId"], "name": workspace["name"], "url": ui},
        "connection": ref("connections", connection["connectionId"], connection["name"]),
        "source": ref("source", connection["sourceId"], source.get("name", "")),
        "destination": ref("destination", connection["destinationId"], destination.get("name", "")),
        "jobId": job["jobId"],
        "startedAt": _iso(job["created_at"]),
        "finishedAt": _iso(job["ended_at"]),
        "bytesEmitted": job["bytes"] or 0,
        "bytesCommitted": job["bytes"] or 0,
        "recordsEmitted": job["rows"] or 0,
        "recordsCommitted": job["rows"] or 0,
        "recordsFilteredOut": 0,
        "bytesFilteredOut": 0,
        "bytesEmittedFormatted": f"{job['bytes'] or 0} B",
        "bytesCommittedFormatted": f"{job['bytes'] or 0} B",
        "success": success,
        "durationInSeconds": seconds,
        "durationFormatted": f"{seconds // 3600} hours {seconds % 3600 // 60} min",
    }
    if not success:
        data.update(errorMessage=job["error_message"], errorType=job["error_type"], errorOrigin=job["error_origin"])
    text = f"Your connection {connection['name']} {'succeeded' if success else 'failed'} (job {job['jobId']})."
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}], "data": data}


# --- handler plumbing --------------------------------------------------------------------------------


def api(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Serve `handler` under both API roots, behind the bearer token, turning a Problem into its answer."""

    @wraps(handler)
    def wrapped(ctx: Context, root: str, **args: Any) -> Response:
        if root not in ROOTS:
            return not_found("route", ctx.request.path).response()
        scheme, _, token = ctx.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not ctx.state.airbyte.token_valid(token.strip()):
            return Problem(401, "invalid-api-key", "Invalid API key").response()
        try:
            with ctx.state.airbyte._lock:
                return handler(ctx, **args)
        except Problem as problem:
            return problem.response()
        finally:
            ctx.state.airbyte.deliver_later()  # a job this call saw end is told after the answer

    return wrapped


def _body(ctx: Context) -> dict[str, Any]:
    return read_json_object(ctx.request)


def _uuid(value: Any, field: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise bad_request(f"{field} is not a valid UUID: {value!r}") from None


def _int_arg(ctx: Context, name: str, default: int, low: int, high: int | None) -> int:
    raw = ctx.request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        raise bad_request(f"{name} must be between {low} and {high}" if high else f"{name} must be at least {low}")
    return value


def _workspace_filter(ctx: Context) -> set[str]:
    ids: set[str] = set()
    for raw in ctx.request.args.getlist("workspaceIds"):
        ids.update(_uuid(part, "workspaceIds") for part in raw.split(",") if part)
    return ids


def _page(ctx: Context, items: list[dict[str, Any]]) -> dict[str, Any]:
    limit = _int_arg(ctx, "limit", 20, 1, 100)
    offset = _int_arg(ctx, "offset", 0, 0, None)
    base = ctx.request.base_url

    def link(new_offset: int) -> str:
        args = {k: v for k, v in ctx.request.args.items(multi=True) if k not in ("limit", "offset")}
        return f"{base}?{urlencode({**args, 'limit': limit, 'offset': new_offset})}"

    page: dict[str, Any] = {"data": items[offset : offset + limit]}
    if offset + limit < len(items):
        page["next"] = link(offset + limit)
    if offset > 0:
        page["previous"] = link(max(0, offset - limit))
    return page


def _include_deleted(ctx: Context) -> bool:
    return ctx.request.args.get("includeDeleted", "false").lower() == "true"


# --- token -------------------------------------------------------------------------------------------


def token(ctx: Context, root: str) -> Response:
    if root not in ROOTS:
        return not_found("route", ctx.request.path).response()
    if ctx.request.mimetype == "application/x-www-form-urlencoded":
        payload: dict[str, Any] = dict(ctx.request.form)
    else:
        payload = read_json_object(ctx.request)
    client_id, client_secret = payload.get("client_id"), payload.get("client_secret")
    if not isinstance(client_id, str) or not isinstance(client_secret, str) or not client_id or not client_secret:
        return bad_request("client_id and client_secret are required").response()
    body = ctx.state.airbyte.issue_token(client_id, client_secret)
    if body is None:
        return Problem(401, "invalid-api-key", "Invalid client credentials").response()
    return json_response(body)


# --- sources and destinations ------------------------------------------------------------------------


class _Actors:
    """What sources and destinations share; `kind` is "source" or "destination"."""

    def __init__(self, kind: str, specs: dict[str, dict[str, Any]], definitions: dict[str, str]) -> None:
        self.kind, self.specs, self.definitions = kind, specs, definitions
        self.type_key = f"{kind}Type"
        self.body = source_body if kind == "source" else destination_body

    def store(self, ctx: Context) -> dict[str, dict[str, Any]]:
        return ctx.state.airbyte.sources if self.kind == "source" else ctx.state.airbyte.destinations

    def get(self, ctx: Context, actor_id: str) -> dict[str, Any]:
        actor = self.store(ctx).get(actor_id)
        if actor is None or actor["deleted"]:
            raise not_found(self.kind, actor_id)
        return actor

    def checked(self, actor_type: str, configuration: dict[str, Any]) -> dict[str, Any]:
        problems = validate(self.specs[actor_type], configuration)
        if problems:
            raise unprocessable(
                "The provided configuration does not fulfill the specification. Errors: " + "; ".join(problems)
            )
        return configuration

    def create(self, ctx: Context) -> Response:
        payload = _body(ctx)
        for field in ("name", "workspaceId", "configuration"):
            if payload.get(field) in (None, ""):
                raise bad_request(f"{field} must not be null")
        if not isinstance(payload["name"], str) or not isinstance(payload["configuration"], dict):
            raise bad_request("name must be a string and configuration an object")
        workspace_id = _uuid(payload["workspaceId"], "workspaceId")
        configuration = copy.deepcopy(payload["configuration"])
        actor_type = configuration.pop(self.type_key, None)
        definition_id = payload.get("definitionId")
        if actor_type is None and definition_id:
            by_id = {v: k for k, v in self.definitions.items()}
            actor_type = by_id.get(_uuid(definition_id, "definitionId"))
            if actor_type is None:
                raise not_found(f"{self.kind}_definition", definition_id)
        if actor_type is None:
            raise unprocessable(f"configuration.{self.type_key} or definitionId must be provided")
        if actor_type not in self.specs:
            raise Problem(
                400,
                "bad-request",
                f"{actor_type} is not a valid {self.type_key}",
                {"value": actor_type, "validValues": sorted(self.specs)},
            )
        actor = {
            "id": str(uuid.uuid4()),
            "name": payload["name"],
            "type": actor_type,
            "workspaceId": workspace_id,
            "configuration": self.checked(actor_type, configuration),
            "createdAt": int(time.time()),
            "resourceAllocation": payload.get("resourceAllocation"),
            "deleted": False,
            "seq": next(_SEQUENCE),
        }
        self.store(ctx)[actor["id"]] = actor
        return json_response(self.body(actor))

    def read(self, ctx: Context, actor_id: str) -> Response:
        return json_response(self.body(self.get(ctx, actor_id)))

    def list(self, ctx: Context) -> Response:
        workspaces = _workspace_filter(ctx)
        deleted = _include_deleted(ctx)
        actors = sorted(self.store(ctx).values(), key=lambda a: a["seq"])
        items = [
            self.body(a)
            for a in actors
            if (deleted or not a["deleted"]) and (not workspaces or a["workspaceId"] in workspaces)
        ]
        return json_response(_page(ctx, items))

    def update(self, ctx: Context, actor_id: str, *, merge: bool) -> Response:
        actor = self.get(ctx, actor_id)
        payload = _body(ctx)
        if not merge:
            for field in ("name", "configuration"):
                if payload.get(field) in (None, ""):
                    raise bad_request(f"{field} must not be null")
        name = payload.get("name", actor["name"])
        if not isinstance(name, str) or not name:
            raise bad_request("name must be a non-empty string")
        configuration = payload.get("configuration")
        if configuration is not None:
            if not isinstance(configuration, dict):
                raise bad_request("configuration must be an object")
            configuration = copy.deepcopy(configuration)
            configuration.pop(self.type_key, None)
            if merge:
                configuration = deep_merge(actor["configuration"], configuration)
            else:  # PUT replaces, but a masked secret still means "keep the stored one"
                configuration = keep_masked(configuration, actor["configuration"])
            actor["configuration"] = self.checked(actor["type"], configuration)
        actor["name"] = name
        if "workspaceId" in payload and merge:
            actor["workspaceId"] = _uuid(payload["workspaceId"], "workspaceId")
        if "resourceAllocation" in payload:
            actor["resourceAllocation"] = payload["resourceAllocation"]
        return json_response(self.body(actor))

    def delete(self, ctx: Context, actor_id: str) -> Response:
        actor = self.get(ctx, actor_id)
        actor["deleted"] = True
        key = f"{self.kind}Id"
        for connection in ctx.state.airbyte.connections.values():
            if connection[key] == actor_id:
                connection["status"] = "deprecated"
        return Response(status=204)


SOURCES = _Actors("source", SOURCE_SPECS, SOURCE_DEFINITIONS)
DESTINATIONS = _Actors("destination", DESTINATION_SPECS, DESTINATION_DEFINITIONS)


# --- connections -------------------------------------------------------------------------------------


def _catalog(source: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {stream["name"]: stream for stream in CATALOGS[source["type"]]}


def _stream_configurations(source: dict[str, Any], configurations: Any) -> dict[str, Any]:
    catalog = _catalog(source)
    if configurations is None:
        configurations = {}
    if not isinstance(configurations, dict):
        raise bad_request("configurations must be an object")
    streams = configurations.get("streams")
    if streams is None:  # Airbyte selects every stream, as full_refresh_overwrite
        streams = [{"name": name, "syncMode": "full_refresh_overwrite"} for name in catalog]
    if not isinstance(streams, list) or not all(isinstance(s, dict) for s in streams):
        raise bad_request("configurations.streams must be a list of objects")
    seen: set[str] = set()
    result = []
    for requested in streams:
        name = requested.get("name")
        if name not in catalog:
            raise unprocessable(
                f"Invalid stream found: {name!r}. The list of valid streams include: {sorted(catalog)}."
            )
        if name in seen:
            raise bad_request(f"Duplicate stream found in configuration for: {name}.")
        seen.add(name)
        stream = catalog[name]
        mode = requested.get("syncMode") or "full_refresh_overwrite"
        if mode not in SYNC_MODES:
            raise bad_request(f"syncMode {mode!r} is not one of {list(SYNC_MODES)}")
        if mode not in stream_sync_modes(stream):
            raise bad_request(f"Cannot set sync mode to {mode} for stream {name}.")
        entry: dict[str, Any] = {"name": name, "syncMode": mode}
        cursor = requested.get("cursorField") or stream["cursor"]
        if not (isinstance(cursor, list) and all(isinstance(c, str) for c in cursor)):
            raise bad_request(f"cursorField of stream {name} must be a list of strings")
        if mode.startswith("incremental"):
            entry["cursorField"] = list(cursor)
        primary_key = requested.get("primaryKey") or stream["primary_key"]
        if not (isinstance(primary_key, list) and all(isinstance(p, list) for p in primary_key)):
            raise bad_request(f"primaryKey of stream {name} must be a list of lists of strings")
        if mode.endswith("deduped") or mode == "incremental_deduped_history":
            entry["primaryKey"] = [list(p) for p in primary_key]
        if "selectedFields" in requested:
            entry["selectedFields"] = copy.deepcopy(requested["selectedFields"])
        result.append(entry)
    return {"streams": result}


def _schedule(value: Any) -> dict[str, Any]:
    if value is None:
        return {"scheduleType": "manual"}
    if not isinstance(value, dict) or value.get("scheduleType") not in ("manual", "cron"):
        raise bad_request("schedule.scheduleType must be one of ['manual', 'cron']")
    if value["scheduleType"] == "manual":
        return {"scheduleType": "manual"}
    expression = value.get("cronExpression")
    if not isinstance(expression, str) or not expression.strip():
        raise bad_request("schedule.cronExpression is required for a cron schedule")
    expression = re.sub(r"\s+UTC$", "", expression.strip())
    fields = expression.split()
    if len(fields) not in (6, 7):
        raise bad_request(f"{expression} is not a valid Quartz cron expression")
    if not fields[0].isdigit() or (len(fields) == 7 and not fields[1].isdigit()):
        raise bad_request("The cron expression is less than the one hour minimum")
    return {"scheduleType": "cron", "cronExpression": f"{expression} UTC"}


def _choice(payload: dict[str, Any], name: str, choices: tuple[str, ...], default: str | None) -> str | None:
    value = payload.get(name, default)
    if value is not None and value not in choices:
        raise bad_request(f"{name} must be one of {list(choices)}")
    return value


def _apply_connection_fields(connection: dict[str, Any], payload: dict[str, Any], source: dict[str, Any]) -> None:
    if "name" in payload:
        if not isinstance(payload["name"], str) or not payload["name"]:
            raise bad_request("name must be a non-empty string")
        connection["name"] = payload["name"]
    if "namespaceDefinition" in payload:
        connection["namespaceDefinition"] = _choice(payload, "namespaceDefinition", NAMESPACE_DEFINITIONS, None)
    for field in ("namespaceFormat", "prefix"):
        if field in payload:
            if payload[field] is not None and not isinstance(payload[field], str):
                raise bad_request(f"{field} must be a string")
            connection[field] = payload[field] if field == "namespaceFormat" else (payload[field] or "")
    if "nonBreakingSchemaUpdatesBehavior" in payload:
        connection["nonBreakingSchemaUpdatesBehavior"] = _choice(
            payload, "nonBreakingSchemaUpdatesBehavior", SCHEMA_UPDATES, None
        )
    if "status" in payload:
        connection["status"] = _choice(payload, "status", CONNECTION_STATUSES, None)
    if "schedule" in payload:
        connection["schedule"] = _schedule(payload["schedule"])
    if "configurations" in payload:
        connection["configurations"] = _stream_configurations(source, payload["configurations"])
    if "tags" in payload:
        if not isinstance(payload["tags"], list):
            raise bad_request("tags must be a list")
        connection["tags"] = copy.deepcopy(payload["tags"])


def _connection(ctx: Context, connection_id: str) -> dict[str, Any]:
    connection = ctx.state.airbyte.connections.get(connection_id)
    if connection is None:
        raise not_found("connection", connection_id)
    return connection


@api
def connections_create(ctx: Context) -> Response:
    payload = _body(ctx)
    for field in ("sourceId", "destinationId"):
        if not payload.get(field):
            raise bad_request(f"{field} must not be null")
    source = SOURCES.get(ctx, _uuid(payload["sourceId"], "sourceId"))
    destination = DESTINATIONS.get(ctx, _uuid(payload["destinationId"], "destinationId"))
    connection: dict[str, Any] = {
        "connectionId": str(uuid.uuid4()),
        "name": f"{source['name']} → {destination['name']}",
        "sourceId": source["id"],
        "destinationId": destination["id"],
        "workspaceId": source["workspaceId"],
        "status": "active",
        "schedule": {"scheduleType": "manual"},
        "dataResidency": "auto",
        "nonBreakingSchemaUpdatesBehavior": "ignore",
        "namespaceDefinition": "destination",
        "namespaceFormat": None,
        "prefix": "",
        "configurations": _stream_configurations(source, None),
        "createdAt": int(time.time()),
        "tags": [],
        "seq": next(_SEQUENCE),
    }
    payload.setdefault("configurations", None)
    _apply_connection_fields(connection, payload, source)
    ctx.state.airbyte.connections[connection["connectionId"]] = connection
    return json_response(connection_body(connection))


@api
def connections_get(ctx: Context, connection_id: str) -> Response:
    return json_response(connection_body(_connection(ctx, connection_id)))


@api
def connections_list(ctx: Context) -> Response:
    workspaces = _workspace_filter(ctx)
    deleted = _include_deleted(ctx)
    connections = sorted(ctx.state.airbyte.connections.values(), key=lambda c: c["seq"])
    items = [
        connection_body(c)
        for c in connections
        if (deleted or c["status"] != "deprecated") and (not workspaces or c["workspaceId"] in workspaces)
    ]
    return json_response(_page(ctx, items))


@api
def connections_patch(ctx: Context, connection_id: str) -> Response:
    connection = _connection(ctx, connection_id)
    payload = _body(ctx)
    for field in ("sourceId", "destinationId"):
        if field in payload and payload[field] != connection[field]:
            raise bad_request(f"{field} cannot be changed")
    source = ctx.state.airbyte.sources[connection["sourceId"]]
    _apply_connection_fields(connection, payload, source)
    return json_response(connection_body(connection))


@api
def connections_delete(ctx: Context, connection_id: str) -> Response:
    connection = _connection(ctx, connection_id)
    connection["status"] = "deprecated"
    return Response(status=204)


@api
def streams_list(ctx: Context) -> Response:
    source_id = ctx.request.args.get("sourceId")
    if not source_id:
        raise bad_request("sourceId is required")
    source = SOURCES.get(ctx, _uuid(source_id, "sourceId"))
    if ctx.request.args.get("destinationId"):
        DESTINATIONS.get(ctx, _uuid(ctx.request.args["destinationId"], "destinationId"))
    return json_response(
        [
            {
                "streamName": stream["name"],
                "syncModes": stream_sync_modes(stream),
                "defaultCursorField": stream["cursor"],
                "sourceDefinedCursorField": bool(stream["cursor"]),
                "sourceDefinedPrimaryKey": stream["primary_key"],
                "propertyFields": [],
            }
            for stream in CATALOGS[source["type"]]
        ]
    )


# --- jobs --------------------------------------------------------------------------------------------


def _job(ctx: Context, job_id: int) -> dict[str, Any]:
    job = ctx.state.airbyte.jobs.get(job_id)
    if job is None:
        raise not_found("job", job_id)
    return job


def _world_lookups(ctx: Context, source: dict[str, Any]) -> tuple[str | None, Callable[[str], dict[str, Any] | None]]:
    """What names a source's world besides its configuration: the Klaviyo account of a key the sandbox issued,
    and the sandbox Shopify's record of a world's shop (its time zone and currency)."""
    account = None
    if source["type"] == "klaviyo":  # the world of a Klaviyo key is its account's, when the sandbox issued it
        account = (ctx.state.klaviyo.get(source["configuration"].get("api_key", "")) or {}).get("account_id")

    def shop_of(identity: str) -> dict[str, Any] | None:
        kind, _, handle = identity.partition(":")
        if kind != "shopify":
            return None
        with ctx.state.shopify._lock:  # a known shop only: looking must not create one
            shop = ctx.state.shopify.shops.get(f"{handle}.myshopify.com")
            return dict(shop) if shop else None

    return account, shop_of


@api
def jobs_create(ctx: Context) -> Response:
    payload = _body(ctx)
    if not payload.get("connectionId"):
        raise bad_request("connectionId must not be null")
    job_type = payload.get("jobType")
    if job_type not in JOB_TYPES:
        raise bad_request(f"jobType must be one of {list(JOB_TYPES)}")
    if job_type == "refresh":
        raise unprocessable("Refreshes are not supported in the public API")
    connection = _connection(ctx, _uuid(payload["connectionId"], "connectionId"))
    if connection["status"] != "active":
        raise Problem(
            409,
            "state-conflict",
            f"Connection {connection['connectionId']} is {connection['status']}",
            {"message": f"Connection {connection['connectionId']} is {connection['status']}"},
        )
    airbyte = ctx.state.airbyte
    if airbyte.running_job(connection["connectionId"]) is not None:
        raise Problem(
            409,
            "try-again-later",
            "Please try again later.",
            {"message": f"A sync is already running for: {connection['connectionId']}"},
        )
    source = airbyte.sources[connection["sourceId"]]
    destination = airbyte.destinations[connection["destinationId"]]
    account, shop_of = _world_lookups(ctx, source)

    def plan(job_id: int) -> JobPlan | None:
        if source["deleted"] or destination["deleted"]:
            return None
        return airbyte.job_plan(connection, source, destination, job_id, job_type, account, shop_of)

    job = airbyte.new_job(connection["connectionId"], job_type, plan)
    return json_response(job_body(airbyte, job))


@api
def jobs_get(ctx: Context, job_id: int) -> Response:
    return json_response(job_body(ctx.state.airbyte, _job(ctx, job_id)))


def _datetime_arg(ctx: Context, name: str) -> float | None:
    raw = ctx.request.args.get(name)
    if not raw:
        return None
    try:
        return dt.datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise bad_request(f"{name} must be an ISO-8601 date-time") from None


@api
def jobs_list(ctx: Context) -> Response:
    airbyte = ctx.state.airbyte
    args = ctx.request.args
    connection_id = args.get("connectionId")
    if connection_id:
        connection_id = _uuid(connection_id, "connectionId")
    job_type, status = args.get("jobType"), args.get("status")
    if job_type and job_type not in JOB_TYPES:
        raise bad_request(f"jobType must be one of {list(JOB_TYPES)}")
    if status and status not in JOB_STATUSES:
        raise bad_request(f"status must be one of {list(JOB_STATUSES)}")
    order = args.get("orderBy") or "createdAt|DESC"
    field, _, direction = order.partition("|")
    if field not in ("createdAt", "updatedAt") or direction not in ("ASC", "DESC"):
        raise bad_request("orderBy must be createdAt|ASC, createdAt|DESC, updatedAt|ASC or updatedAt|DESC")
    workspaces = _workspace_filter(ctx)
    names = ("createdAtStart", "createdAtEnd", "updatedAtStart", "updatedAtEnd")
    bounds = {name: _datetime_arg(ctx, name) for name in names}
    selected = []
    for job in airbyte.jobs.values():
        body = job_body(airbyte, job)
        updated = job["ended_at"] or job["created_at"]
        connection = airbyte.connections.get(job["connectionId"])
        if connection_id and job["connectionId"] != connection_id:
            continue
        if workspaces and (connection is None or connection["workspaceId"] not in workspaces):
            continue
        if (job_type and job["jobType"] != job_type) or (status and body["status"] != status):
            continue
        if bounds["createdAtStart"] is not None and job["created_at"] < bounds["createdAtStart"]:
            continue
        if bounds["createdAtEnd"] is not None and job["created_at"] > bounds["createdAtEnd"]:
            continue
        if bounds["updatedAtStart"] is not None and updated < bounds["updatedAtStart"]:
            continue
        if bounds["updatedAtEnd"] is not None and updated > bounds["updatedAtEnd"]:
            continue
        key = job["created_at"] if field == "createdAt" else updated
        selected.append(((key, job["jobId"]), body))
    selected.sort(key=lambda item: item[0], reverse=direction == "DESC")
    return json_response(_page(ctx, [body for _, body in selected]))


def _notification_config(kind: str, value: Any) -> dict[str, Any]:
    """A NotificationConfig: ``{"email"?: {"enabled"}, "webhook"?: {"enabled", "url"}}``."""
    if not isinstance(value, dict) or set(value) - {"email", "webhook"}:
        raise bad_request(f"notifications.{kind} must be an object with email and/or webhook")
    config: dict[str, Any] = {}
    for channel, item in value.items():
        if not isinstance(item, dict) or not isinstance(item.get("enabled", False), bool):
            raise bad_request(f"notifications.{kind}.{channel}.enabled must be a boolean")
        if (
            channel == "webhook"
            and item.get("url") is not None
            and (not isinstance(item["url"], str) or not item["url"].startswith(("http://", "https://")))
        ):
            raise bad_request(f"notifications.{kind}.webhook.url must be an http(s) URL")
        config[channel] = {"enabled": item.get("enabled", False), **({"url": item["url"]} if "url" in item else {})}
    return config


def workspace_body(workspace: dict[str, Any]) -> dict[str, Any]:
    return {"workspaceId": workspace["workspaceId"], "name": workspace["name"], "dataResidency": "auto",
            "notifications": copy.deepcopy(workspace["notifications"])}  # fmt: skip


@api
def workspaces_get(ctx: Context, workspace_id: str) -> Response:
    return json_response(workspace_body(ctx.state.airbyte.workspace(_uuid(workspace_id, "workspaceId"))))


@api
def workspaces_patch(ctx: Context, workspace_id: str) -> Response:
    """WorkspaceUpdateRequest ``{name?, notifications?}``; each notification kind given replaces the stored one."""
    payload = _body(ctx)
    workspace = ctx.state.airbyte.workspace(_uuid(workspace_id, "workspaceId"))
    notifications = payload.get("notifications")
    if notifications is not None:
        if not isinstance(notifications, dict) or set(notifications) - set(NOTIFICATION_KINDS):
            raise bad_request(f"notifications must be an object of {list(NOTIFICATION_KINDS)}")
        checked = {kind: _notification_config(kind, value) for kind, value in notifications.items()}
        workspace["notifications"].update(checked)
    if "name" in payload:
        if not isinstance(payload["name"], str) or not payload["name"]:
            raise bad_request("name must be a non-empty string")
        workspace["name"] = payload["name"]
    return json_response(workspace_body(workspace))


@api
def jobs_cancel(ctx: Context, job_id: int) -> Response:
    airbyte = ctx.state.airbyte
    job = _job(ctx, job_id)
    airbyte.cancel(job)
    return json_response(job_body(airbyte, job))


# --- control -----------------------------------------------------------------------------------------

_OUTCOME_FIELDS = {
    "status",
    "errorType",
    "errorMessage",
    "errorOrigin",
    "rowsSynced",
    "bytesSynced",
    "pendingSeconds",
    "runningSeconds",
    "incomplete",
    "connectionId",
    "times",
}


def _seconds(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, or null to wait for an advance")
    return float(value)


def control_configure(ctx: Context) -> Response:
    """``{"client_id"?, "client_secret"?, "token_ttl"?, "pending_seconds"?, "running_seconds"?}``."""
    payload = read_json_object(ctx.request)
    unknown = set(payload) - {"client_id", "client_secret", "token_ttl", "pending_seconds", "running_seconds"}
    try:
        if unknown:
            raise ValueError(f"unknown options: {sorted(unknown)}")
        for name in ("pending_seconds", "running_seconds"):
            if name in payload:
                _seconds(payload[name], name)
        if "token_ttl" in payload and (
            isinstance(payload["token_ttl"], bool) or not isinstance(payload["token_ttl"], (int, float))
        ):
            raise ValueError("token_ttl must be a number of seconds")
    except ValueError as exc:
        return json_response({"error": str(exc)}, status=400)
    ctx.state.airbyte.configure(payload)
    return Response(status=204)


def control_tokens_list(ctx: Context) -> Response:
    """Every token issued since the last reset (tests check that none leaks into logs or errors)."""
    with ctx.state.airbyte._lock:
        return json_response(list(ctx.state.airbyte.tokens))


def control_tokens_expire(ctx: Context) -> Response:
    return json_response({"expired": ctx.state.airbyte.expire_tokens()})


def control_outcomes_create(ctx: Context) -> Response:
    """Script how the next job (of a connection, or of any) ends; see _OUTCOME_FIELDS."""
    payload = read_json_object(ctx.request)
    try:
        unknown = set(payload) - _OUTCOME_FIELDS
        if unknown:
            raise ValueError(f"unknown outcome fields: {sorted(unknown)}")
        status = payload.setdefault("status", "succeeded")
        if status not in TERMINAL:
            raise ValueError(f"status must be one of {sorted(TERMINAL)}")
        if payload.get("errorType") is not None and payload["errorType"] not in ERROR_TYPES:
            raise ValueError(f"errorType must be one of {list(ERROR_TYPES)}")
        if payload.get("errorOrigin") is not None and payload["errorOrigin"] not in ERROR_ORIGINS:
            raise ValueError(f"errorOrigin must be one of {list(ERROR_ORIGINS)}")
        for name in ("pendingSeconds", "runningSeconds"):
            if name in payload:
                payload[name] = _seconds(payload[name], name)
        for name in ("rowsSynced", "bytesSynced"):
            if name in payload and (isinstance(payload[name], bool) or not isinstance(payload[name], int)):
                raise ValueError(f"{name} must be an integer")
        times = payload.setdefault("times", 1)
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError("times must be a positive integer")
        if payload.get("connectionId") is not None:
            payload["connectionId"] = str(uuid.UUID(str(payload["connectionId"])))
    except ValueError as exc:
        return json_response({"error": str(exc)}, status=400)
    ctx.state.airbyte.add_outcome(payload)
    return json_response(payload, status=201)


def _control_job_body(state: AirbyteState, job: dict[str, Any]) -> dict[str, Any]:
    return {
        **job_body(state, job),
        "errorType": job["error_type"],
        "errorMessage": job["error_message"],
        "errorOrigin": job["error_origin"],
        "stages": list(job["stages"]),
    }


def control_jobs_get(ctx: Context, job_id: int) -> Response:
    airbyte = ctx.state.airbyte
    with airbyte._lock:
        job = airbyte.jobs.get(job_id)
        if job is None:
            return json_response({"error": f"no job {job_id}"}, status=404)
        body = _control_job_body(airbyte, job)
    airbyte.deliver_later()  # reading it may have ended it
    return json_response(body)


def control_jobs_advance(ctx: Context, job_id: int) -> Response:
    """Move a job to its next stage now, or with ``{"to": status}`` straight to that stage or end."""
    airbyte = ctx.state.airbyte
    with airbyte._lock:
        job = airbyte.jobs.get(job_id)
    if job is None:
        return json_response({"error": f"no job {job_id}"}, status=404)
    to = read_json_object(ctx.request).get("to")
    if to is not None and to not in JOB_STATUSES:
        return json_response({"error": f"to must be one of {list(JOB_STATUSES)}"}, status=400)
    try:
        airbyte.advance(job, to)
    except Problem as problem:
        return json_response({"error": problem.detail}, status=409)
    except ValueError as exc:
        return json_response({"error": str(exc)}, status=400)
    with airbyte._lock:
        body = _control_job_body(airbyte, job)
    # Delivered before answering (no lock held: the receiver reads the job back), so a test that ends a job
    # sees what its notification did as soon as this returns.
    return json_response({**body, "notifications": airbyte.deliver()})


def control_notifications(ctx: Context) -> Response:
    """Every notification delivered since the last reset: URL without its query, jobId, success, status."""
    with ctx.state.airbyte._lock:
        return json_response(copy.deepcopy(ctx.state.airbyte.deliveries))


def control_state(ctx: Context) -> Response:
    """Every live source and destination and every connection, as the API shows them (secrets masked)."""
    airbyte = ctx.state.airbyte
    with airbyte._lock:
        return json_response(
            {
                "sources": [source_body(s) for s in airbyte.sources.values() if not s["deleted"]],
                "destinations": [destination_body(d) for d in airbyte.destinations.values() if not d["deleted"]],
                "connections": [connection_body(c) for c in airbyte.connections.values()],
            }
        )


def control_source_configuration(ctx: Context, source_id: str) -> Response:
    """The stored, unmasked configuration of a source: what a sync would run with (tests check PATCHes)."""
    airbyte = ctx.state.airbyte
    with airbyte._lock:
        source = airbyte.sources.get(source_id)
        if source is None:
            return json_response({"error": f"no source {source_id}"}, status=404)
        return json_response(copy.deepcopy(source["configuration"]))


def control_world(ctx: Context) -> Response:
    """GET: the world's settings and clock. POST: change settings (history_days, orders_per_day, seed,
    timezone, currency, start_date, links, worlds); first days already fixed by a sync are forgotten."""
    airbyte = ctx.state.airbyte
    if ctx.request.method == "POST":
        payload = read_json_object(ctx.request)
        with airbyte._lock:
            try:
                airbyte.world = settings_update(airbyte.world, payload)
            except ValueError as exc:
                return json_response({"error": str(exc)}, status=400)
            airbyte.world_starts.clear()
        world_cache_clear()  # worlds are keyed by their settings: this frees the ones no sync reads again
    with airbyte._lock:
        return json_response({**airbyte.world.to_dict(), "clock": _clock_body(airbyte)})


def control_world_link(ctx: Context) -> Response:
    """``{"to": <source id>, "sources": [<source id>, ...], "world": {settings}}``: the sources read the world
    of source ``to`` (one merchant: its Meta campaigns are those its Shopify orders came from), and that world
    has the given settings of its own (history_days, orders_per_day, seed, timezone, currency, start_date).
    Answers the world's identity and the identity each source had."""
    airbyte = ctx.state.airbyte
    payload = read_json_object(ctx.request)
    to, linked, own = payload.get("to"), payload.get("sources", []), payload.get("world", {})
    if not isinstance(to, str) or not isinstance(linked, list) or not all(isinstance(i, str) for i in linked):
        return json_response({"error": 'give "to" (a source id) and "sources" (a list of source ids)'}, status=400)
    if not isinstance(own, dict):
        return json_response({"error": '"world" must be an object of world settings'}, status=400)
    with airbyte._lock:
        identities = {}
        for source_id in (to, *linked):
            source = airbyte.sources.get(source_id)
            if source is None or source["deleted"]:
                return json_response({"error": f"no source {source_id}"}, status=404)
            account, _shop_of = _world_lookups(ctx, source)
            identities[source_id] = world_identity(source["type"], source["configuration"], account)
        world = identities[to]
        links = {**airbyte.world.links, **{identities[i]: world for i in linked if identities[i] != world}}
        try:
            airbyte.world = settings_update(
                airbyte.world, {"links": links, "worlds": {**airbyte.world.worlds, world: own}}
            )
        except ValueError as exc:
            return json_response({"error": str(exc)}, status=400)
        for identity in (world, *identities.values()):
            airbyte.world_starts.pop(identity, None)
    return json_response({"world": world, "sources": identities})


# Tables of the simulated world that no connector of the sandbox delivers: the web pixel's sessions (until
# dbt builds them from the collector's events) and Attentive's events (which arrive by webhook, not through
# Airbyte). Not web_events: the collector writes those (the world serves them at world-events, below).
SEED_ONLY_TABLES = tuple(
    table
    for table in RAW_TABLES
    if table != "web_events" and not any(table in streams.values() for streams in STREAM_TABLES.values())
)


def control_world_seed(ctx: Context, connection_id: str) -> Response:
    """``{"tables": [...]}`` (default: all of SEED_ONLY_TABLES): write those tables of the connection's world,
    everything visible up to the world's now, into the connection's namespace (unprefixed, as the app's own
    raw tables are named), replacing what they held. For a demo store's data no sandbox connector carries."""
    airbyte = ctx.state.airbyte
    payload = read_json_object(ctx.request)
    tables = payload.get("tables", list(SEED_ONLY_TABLES))
    if not isinstance(tables, list) or not set(tables) <= set(SEED_ONLY_TABLES):
        return json_response({"error": f"tables must be a list drawn from {list(SEED_ONLY_TABLES)}"}, status=400)
    with airbyte._lock:
        connection = airbyte.connections.get(connection_id)
        if connection is None or connection.get("status") == "deprecated":
            return json_response({"error": f"no connection {connection_id}"}, status=404)
        source = airbyte.sources[connection["sourceId"]]
        destination = airbyte.destinations[connection["destinationId"]]
    account, shop_of = _world_lookups(ctx, source)
    plan = airbyte.job_plan(connection, source, destination, 0, "sync", account, shop_of)
    try:
        written = airbyte_worker.seed_tables(plan, tables)
    except airbyte_worker.SyncFailure as exc:
        return json_response({"error": exc.message}, status=502)
    return json_response({"world": plan.identity, "tables": written})


MAX_WORLD_EVENTS_PAGE = 10_000


def control_world_events(ctx: Context, connection_id: str) -> Response:
    """``{"after": {"at": <epoch seconds>, "event_id": …} | null, "limit": 1 to 10000}``: the web pixel's events of
    the connection's world's visitors that occurred before the world's now, in (time, event id) order, from just
    after ``after``; ``next`` is where the following page starts (null: none before now). Each event is what the
    pixel posts (``sandbox.world.sources.web_events``): a demo posts them to the collector with the store's key."""
    airbyte = ctx.state.airbyte
    payload = read_json_object(ctx.request)
    limit, after = payload.get("limit", 5000), payload.get("after")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_WORLD_EVENTS_PAGE:
        return json_response({"error": f"limit must be an integer from 1 to {MAX_WORLD_EVENTS_PAGE}"}, status=400)
    if after is not None and not (
        isinstance(after, dict)
        and isinstance(after.get("at"), int)
        and not isinstance(after.get("at"), bool)
        and isinstance(after.get("event_id"), str)
    ):
        return json_response({"error": 'after must be null or {"at": <epoch seconds>, "event_id": "…"}'}, status=400)
    with airbyte._lock:
        connection = airbyte.connections.get(connection_id)
        if connection is None or connection.get("status") == "deprecated":
            return json_response({"error": f"no connection {connection_id}"}, status=404)
        source = airbyte.sources[connection["sourceId"]]
        destination = airbyte.destinations[connection["destinationId"]]
    if source["type"] != "shopify":
        error = "the pixel's events are read through the store's Shopify connection"
        return json_response({"error": error}, status=400)
    account, shop_of = _world_lookups(ctx, source)
    plan = airbyte.job_plan(connection, source, destination, 0, "sync", account, shop_of)
    events, following = world_pixel_events(
        plan.settings,
        plan.identity,
        start=plan.start,
        now=plan.now,
        after=None if after is None else (after["at"], after["event_id"]),
        limit=limit,
    )
    return json_response(
        {
            "world": plan.identity,
            "now": _iso(plan.now),
            "events": events,
            "next": None if following is None else {"at": following[0], "event_id": following[1]},
        }
    )


def _clock_body(airbyte: AirbyteState) -> dict[str, Any]:
    now = airbyte.clock.now()
    return {"now": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(), "frozen": airbyte.clock.frozen is not None}


def control_world_clock(ctx: Context) -> Response:
    """``{"now": ISO-8601}`` sets (and freezes) the world's now, ``{"advance": seconds}`` moves it on,
    ``{"wall": true}`` follows the wall clock again. A job reads the clock when it is created."""
    airbyte = ctx.state.airbyte
    payload = read_json_object(ctx.request)
    try:
        if len(payload) != 1 or not set(payload) <= {"now", "advance", "wall"}:
            raise ValueError("give exactly one of now (ISO-8601), advance (seconds) or wall (true)")
        if "now" in payload:
            if not isinstance(payload["now"], str):
                raise ValueError("now must be an ISO-8601 date-time with a time zone")
            when = dt.datetime.fromisoformat(payload["now"].replace("Z", "+00:00"))
            if when.tzinfo is None:
                raise ValueError("now must be an ISO-8601 date-time with a time zone")
            airbyte.clock.set(when.timestamp())
        elif "advance" in payload:
            seconds = payload["advance"]
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
                raise ValueError("advance must be a number of seconds >= 0")
            airbyte.clock.advance(seconds)
        elif payload["wall"] is not True:
            raise ValueError("wall must be true")
        else:
            airbyte.clock.follow_wall_clock()
    except ValueError as exc:
        return json_response({"error": str(exc)}, status=400)
    return json_response(_clock_body(airbyte))


def control_connection_last_sync(ctx: Context, connection_id: str) -> Response:
    """What the connection's last sync or reset wrote: per stream its table, rows, bytes, sums of its
    numeric columns over the rows written, window ``[from, to)`` of the world's time and generation."""
    airbyte = ctx.state.airbyte
    with airbyte._lock:
        connection = airbyte.connections.get(connection_id)
        if connection is None:
            return json_response({"error": f"no connection {connection_id}"}, status=404)
        report = connection.get("last_sync")
        if report is None:
            return json_response({"error": "no sync has written anything yet"}, status=404)
        return json_response(copy.deepcopy(report))


def control_connection_last_sync_records(ctx: Context, connection_id: str) -> Response:
    """``?stream=<name>``: the records the last sync wrote for that stream, one object per row with the
    stream's columns typed as JSON (numeric as strings, exact), read again from the simulated world."""
    airbyte = ctx.state.airbyte
    name = ctx.request.args.get("stream")
    with airbyte._lock:
        connection = airbyte.connections.get(connection_id)
        plan = connection.get("last_plan") if connection is not None else None
        report = connection.get("last_sync") if connection is not None else None
        if plan is None or report is None:
            return json_response({"error": f"no sync of connection {connection_id} wrote anything"}, status=404)
        stream = report["streams"].get(name)
        if stream is None:
            return json_response({"error": f"the last sync wrote no stream {name!r}"}, status=404)
    return json_response(airbyte_worker.written_records(plan, name, stream))


def _route(name: str, rule: str, methods: tuple[str, ...], handler: Callable[..., Response]) -> Route:
    return Route(f"airbyte.{name}", f"/airbyte/<path:root>{rule}", methods, handler, airbyte_error_body)


def _actor_routes(actors: _Actors, plural: str) -> tuple[Route, ...]:
    @api
    def create(ctx: Context) -> Response:
        return actors.create(ctx)

    @api
    def read(ctx: Context, actor_id: str) -> Response:
        return actors.read(ctx, actor_id)

    @api
    def list_(ctx: Context) -> Response:
        return actors.list(ctx)

    @api
    def patch(ctx: Context, actor_id: str) -> Response:
        return actors.update(ctx, actor_id, merge=True)

    @api
    def put(ctx: Context, actor_id: str) -> Response:
        return actors.update(ctx, actor_id, merge=False)

    @api
    def delete(ctx: Context, actor_id: str) -> Response:
        return actors.delete(ctx, actor_id)

    item = f"/{plural}/<actor_id>"
    return (
        _route(f"{plural}.create", f"/{plural}", ("POST",), create),
        _route(f"{plural}.list", f"/{plural}", ("GET",), list_),
        _route(f"{plural}.get", item, ("GET",), read),
        _route(f"{plural}.patch", item, ("PATCH",), patch),
        _route(f"{plural}.put", item, ("PUT",), put),
        _route(f"{plural}.delete", item, ("DELETE",), delete),
    )


ROUTES = (
    _route("token.create", "/applications/token", ("POST",), token),
    *_actor_routes(SOURCES, "sources"),
    *_actor_routes(DESTINATIONS, "destinations"),
    _route("connections.create", "/connections", ("POST",), connections_create),
    _route("connections.list", "/connections", ("GET",), connections_list),
    _route("connections.get", "/connections/<connection_id>", ("GET",), connections_get),
    _route("connections.patch", "/connections/<connection_id>", ("PATCH",), connections_patch),
    _route("connections.delete", "/connections/<connection_id>", ("DELETE",), connections_delete),
    _route("streams.list", "/streams", ("GET",), streams_list),
    _route("workspaces.get", "/workspaces/<workspace_id>", ("GET",), workspaces_get),
    _route("workspaces.patch", "/workspaces/<workspace_id>", ("PATCH",), workspaces_patch),
    _route("jobs.create", "/jobs", ("POST",), jobs_create),
    _route("jobs.list", "/jobs", ("GET",), jobs_list),
    _route("jobs.get", "/jobs/<int:job_id>", ("GET",), jobs_get),
    _route("jobs.cancel", "/jobs/<int:job_id>", ("DELETE",), jobs_cancel),
    Route("control.airbyte.configure", "/_control/airbyte/configure", ("POST",), control_configure, control=True),
    Route("control.airbyte.tokens.list", "/_control/airbyte/tokens", ("GET",), control_tokens_list, control=True),
    Route(
        "control.airbyte.tokens.expire",
        "/_control/airbyte/tokens/expire",
        ("POST",),
        control_tokens_expire,
        control=True,
    ),
    Route(
        "control.airbyte.outcomes.create",
        "/_control/airbyte/outcomes",
        ("POST",),
        control_outcomes_create,
        control=True,
    ),
    Route("control.airbyte.jobs.get", "/_control/airbyte/jobs/<int:job_id>", ("GET",), control_jobs_get, control=True),
    Route(
        "control.airbyte.jobs.advance",
        "/_control/airbyte/jobs/<int:job_id>/advance",
        ("POST",),
        control_jobs_advance,
        control=True,
    ),
    Route("control.airbyte.state", "/_control/airbyte/state", ("GET",), control_state, control=True),
    Route(
        "control.airbyte.notifications",
        "/_control/airbyte/notifications",
        ("GET",),
        control_notifications,
        control=True,
    ),
    Route("control.airbyte.world", "/_control/airbyte/world", ("GET", "POST"), control_world, control=True),
    Route("control.airbyte.world.clock", "/_control/airbyte/world/clock", ("POST",), control_world_clock, control=True),
    Route("control.airbyte.world.link", "/_control/airbyte/world/link", ("POST",), control_world_link, control=True),
    Route(
        "control.airbyte.world.events",
        "/_control/airbyte/connections/<connection_id>/world-events",
        ("POST",),
        control_world_events,
        control=True,
    ),
    Route(
        "control.airbyte.world.seed",
        "/_control/airbyte/connections/<connection_id>/world-seed",
        ("POST",),
        control_world_seed,
        control=True,
    ),
    Route(
        "control.airbyte.connections.last_sync.records",
        "/_control/airbyte/connections/<connection_id>/last-sync/records",
        ("GET",),
        control_connection_last_sync_records,
        control=True,
    ),
    Route(
        "control.airbyte.connections.last_sync",
        "/_control/airbyte/connections/<connection_id>/last-sync",
        ("GET",),
        control_connection_last_sync,
        control=True,
    ),
    Route(
        "control.airbyte.sources.configuration",
        "/_control/airbyte/sources/<source_id>/configuration",
        ("GET",),
        control_source_configuration,
        control=True,
    ),
)
