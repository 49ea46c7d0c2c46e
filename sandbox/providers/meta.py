"""Meta Graph API stand-in (shared/PROVIDERS.md §1), mounted under ``/meta``.

Point the app at it with META_GRAPH_URL=<base>/meta/graph and META_DIALOG_URL=<base>/meta/www.
Any ``vNN.N`` version prefix is accepted. Token errors are answered the way Graph does: HTTP 400
with ``{"error": {"type": "OAuthException", "code": 190, "error_subcode": 463|460|467, ...}}``.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Response

from sandbox.routing import Context, Route, json_response, read_json_object

SHORT_LIVED_TTL = 5400
LONG_LIVED_TTL = 5183944  # the docs' sample; "about 60 days"
DEFAULT_SCOPES = ("ads_read", "read_insights")

SUBCODE_PASSWORD_CHANGED = 460
SUBCODE_EXPIRED = 463
SUBCODE_INVALID = 467


def meta_error_body(status: int, message: str, *, code: int | None = None, subcode: int | None = None) -> dict:
    if code is None:
        code = {400: 100, 401: 190, 403: 10, 429: 4}.get(status, 2 if status >= 500 else 1)
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": secrets.token_urlsafe(8),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


def _fmt(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%b %-d, %Y %-I:%M%p").replace("AM", "am").replace("PM", "pm")


class MetaState:
    """Users' tokens of one fake Meta app: short-lived, long-lived and never-expiring system-user tokens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.tokens: dict[str, dict[str, Any]] = {}
            self.codes: dict[str, dict[str, Any]] = {}
            self.deny_next_consent = False
            self.ad_accounts = [{"account_id": "101", "id": "act_101", "name": "Demo Ads"}]

    def configure(self, options: dict[str, Any]) -> None:
        with self._lock:
            if "deny_next_consent" in options:
                self.deny_next_consent = bool(options["deny_next_consent"])
            if "ad_accounts" in options:
                self.ad_accounts = list(options["ad_accounts"])

    def take_deny(self) -> bool:
        with self._lock:
            deny, self.deny_next_consent = self.deny_next_consent, False
            return deny

    def issue(self, *, user_id: str, kind: str, ttl: int | None, scopes: list[str]) -> dict[str, Any]:
        token = "EAA" + secrets.token_urlsafe(40).replace("-", "").replace("_", "")
        now = time.time()
        with self._lock:
            self.tokens[token] = {
                "user_id": user_id,
                "kind": kind,
                "issued_at": int(now),
                "expires_at": 0 if ttl is None else int(now + ttl),
                "invalid_subcode": None,
                "scopes": list(scopes),
            }
        return {"access_token": token, "token_type": "bearer", **({} if ttl is None else {"expires_in": ttl})}

    def new_code(self, *, user_id: str, redirect_uri: str, scopes: list[str]) -> str:
        code = "AQ" + secrets.token_urlsafe(32)
        with self._lock:
            self.codes[code] = {"user_id": user_id, "redirect_uri": redirect_uri, "scopes": scopes}
        return code

    def take_code(self, code: str) -> dict[str, Any] | None:
        with self._lock:
            return self.codes.pop(code, None)

    def get(self, token: str) -> dict[str, Any] | None:
        with self._lock:
            record = self.tokens.get(token)
            return dict(record) if record else None

    def update(self, token: str, **fields: Any) -> bool:
        with self._lock:
            if token not in self.tokens:
                return False
            self.tokens[token].update(fields)
            return True

    def accounts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(a) for a in self.ad_accounts]


def _token_problem(record: dict[str, Any] | None) -> tuple[int, str] | None:
    """(subcode, message) when the token cannot be used, else None."""
    if record is None:
        return SUBCODE_INVALID, "Error validating access token: The session is invalid because the user logged out."
    if record["invalid_subcode"] == SUBCODE_PASSWORD_CHANGED:
        return SUBCODE_PASSWORD_CHANGED, (
            "Error validating access token: The session has been invalidated because the user changed their "
            "password or Facebook has changed the session for security reasons."
        )
    if record["invalid_subcode"] is not None:
        return int(record["invalid_subcode"]), (
            "Error validating access token: The session is invalid because the user logged out."
        )
    now = time.time()
    if record["expires_at"] and record["expires_at"] <= now:
        return SUBCODE_EXPIRED, (
            f"Error validating access token: Session has expired on {_fmt(record['expires_at'])}. "
            f"The current time is {_fmt(now)}."
        )
    return None


def _token_error(problem: tuple[int, str]) -> Response:
    subcode, message = problem
    return json_response(meta_error_body(400, message, code=190, subcode=subcode), status=400)


def _app_ok(ctx: Context, client_id: str | None, client_secret: str | None) -> bool:
    return bool(client_id) and bool(client_secret)


def _user_token(ctx: Context) -> tuple[dict[str, Any] | None, Response | None]:
    token = ctx.request.args.get("access_token", "")
    if not token:
        scheme, _, value = ctx.request.headers.get("Authorization", "").partition(" ")
        token = value.strip() if scheme.lower() in ("bearer", "oauth") else ""
    if not token:
        body = meta_error_body(400, "An active access token must be used to query information about the current user.")
        body["error"]["code"] = 2500
        return None, json_response(body, status=400)
    record = ctx.state.meta.get(token)
    problem = _token_problem(record)
    if problem is not None:
        return None, _token_error(problem)
    return record, None


# --- handlers --------------------------------------------------------------------------------------


def dialog(ctx: Context, version: str) -> Response:
    args = ctx.request.args
    redirect_uri, state = args.get("redirect_uri", ""), args.get("state", "")
    if not redirect_uri or not args.get("client_id"):
        return json_response(meta_error_body(400, "Invalid redirect_uri or client_id"), status=400)
    if ctx.state.meta.take_deny():
        query = {
            "error": "access_denied",
            "error_code": "200",
            "error_description": "Permissions error",
            "error_reason": "user_denied",
            "state": state,
        }
    else:
        scopes = [s for s in args.get("scope", "").split(",") if s] or list(DEFAULT_SCOPES)
        code = ctx.state.meta.new_code(user_id="10" + secrets.token_hex(6), redirect_uri=redirect_uri, scopes=scopes)
        query = {"code": code, "state": state}
    separator = "&" if "?" in redirect_uri else "?"
    return Response(status=302, headers={"Location": f"{redirect_uri}{separator}{urlencode(query)}#_=_"})


def access_token(ctx: Context, version: str) -> Response:
    args = ctx.request.args
    if not _app_ok(ctx, args.get("client_id"), args.get("client_secret")):
        return json_response(meta_error_body(400, "Error validating application.", code=101), status=400)
    meta = ctx.state.meta
    if args.get("grant_type") == "fb_exchange_token":
        record = meta.get(args.get("fb_exchange_token", ""))
        problem = _token_problem(record)
        if problem is not None:
            return _token_error(problem)
        # [U] in the docs: the fake re-issues a fresh long-lived token for a still-valid one.
        return json_response(
            meta.issue(user_id=record["user_id"], kind="long", ttl=LONG_LIVED_TTL, scopes=record["scopes"])
        )
    code = args.get("code")
    if code:
        grant = meta.take_code(code)
        if grant is None or grant["redirect_uri"] != args.get("redirect_uri"):
            body = meta_error_body(400, "This authorization code has been used.", code=100, subcode=36009)
            return json_response(body, status=400)
        return json_response(
            meta.issue(user_id=grant["user_id"], kind="short", ttl=SHORT_LIVED_TTL, scopes=grant["scopes"])
        )
    return json_response(meta_error_body(400, "Missing grant_type or code", code=100), status=400)


def debug_token(ctx: Context, version: str) -> Response:
    args = ctx.request.args
    app_token = args.get("access_token", "")
    if "|" not in app_token:
        return json_response(meta_error_body(400, "Invalid OAuth access token.", code=190), status=400)
    record = ctx.state.meta.get(args.get("input_token", ""))
    if record is None:
        return json_response({"data": {"is_valid": False, "error": {"code": 190, "message": "Invalid token"}}})
    problem = _token_problem(record)
    data = {
        "app_id": app_token.split("|", 1)[0],
        "type": "SYSTEM_USER" if record["kind"] == "system" else "USER",
        "application": "Sandbox App",
        "data_access_expires_at": record["issued_at"] + 90 * 86400,
        "expires_at": record["expires_at"],
        "is_valid": problem is None,
        "issued_at": record["issued_at"],
        "scopes": record["scopes"],
        "user_id": record["user_id"],
    }
    if problem is not None:
        data["error"] = {"code": 190, "subcode": problem[0], "message": problem[1]}
    return json_response({"data": data})


def ad_accounts(ctx: Context, version: str) -> Response:
    _record, refused = _user_token(ctx)
    if refused is not None:
        return refused
    return json_response({"data": ctx.state.meta.accounts(), "paging": {"cursors": {"before": "b", "after": "a"}}})


def insights(ctx: Context, version: str, account_id: str) -> Response:
    _record, refused = _user_token(ctx)
    if refused is not None:
        return refused
    return json_response(
        {"data": [{"spend": "123.45", "impressions": "10000", "clicks": "321", "date_start": "2026-01-01",
                   "date_stop": "2026-01-07", "account_id": account_id.removeprefix("act_")}]}
    )  # fmt: skip


# --- control ---------------------------------------------------------------------------------------


def control_tokens_create(ctx: Context) -> Response:
    """`{"kind": "long"|"short"|"system", "ttl"?: seconds (negative = expired), "scopes"?, "user_id"?}`."""
    payload = read_json_object(ctx.request)
    kind = payload.get("kind", "long")
    if kind not in ("long", "short", "system"):
        return json_response({"error": "kind is long, short or system"}, status=400)
    ttl = None if kind == "system" else int(payload.get("ttl", LONG_LIVED_TTL if kind == "long" else SHORT_LIVED_TTL))
    body = ctx.state.meta.issue(
        user_id=str(payload.get("user_id") or "10" + secrets.token_hex(6)),
        kind=kind,
        ttl=ttl,
        scopes=list(payload.get("scopes") or DEFAULT_SCOPES),
    )
    return json_response(body, status=201)


def control_tokens_invalidate(ctx: Context) -> Response:
    """`{"access_token", "subcode": 463 (expire now) | 460 | 467}`."""
    payload = read_json_object(ctx.request)
    token_value, subcode = str(payload.get("access_token", "")), int(payload.get("subcode", SUBCODE_EXPIRED))
    if subcode == SUBCODE_EXPIRED:
        found = ctx.state.meta.update(token_value, expires_at=int(time.time()) - 1)
    else:
        found = ctx.state.meta.update(token_value, invalid_subcode=subcode)
    if not found:
        return json_response({"error": "unknown token"}, status=404)
    return Response(status=204)


def control_configure(ctx: Context) -> Response:
    ctx.state.meta.configure(read_json_object(ctx.request))
    return Response(status=204)


_GRAPH = "/meta/graph/<version>"

ROUTES = (
    Route("meta.oauth.dialog", "/meta/www/<version>/dialog/oauth", ("GET",), dialog, meta_error_body),
    Route("meta.oauth.access_token", f"{_GRAPH}/oauth/access_token", ("GET",), access_token, meta_error_body),
    Route("meta.debug_token.get", f"{_GRAPH}/debug_token", ("GET",), debug_token, meta_error_body),
    Route("meta.adaccounts.list", f"{_GRAPH}/me/adaccounts", ("GET",), ad_accounts, meta_error_body),
    Route("meta.insights.get", f"{_GRAPH}/<account_id>/insights", ("GET",), insights, meta_error_body),
    Route("control.meta.tokens.create", "/_control/meta/tokens", ("POST",), control_tokens_create, control=True),
    Route(
        "control.meta.tokens.invalidate",
        "/_control/meta/tokens/invalidate",
        ("POST",),
        control_tokens_invalidate,
        control=True,
    ),
    Route("control.meta.configure", "/_control/meta/configure", ("POST",), control_configure, control=True),
)
