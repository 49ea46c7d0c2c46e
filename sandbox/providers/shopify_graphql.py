"""The Shopify stand-in's GraphQL Admin API: the web pixel's part of it (POST /admin/api/<version>/graphql.json).

What the app calls to activate its pixel on a shop, with Shopify's shapes (shopify.dev, GraphQL Admin
`webPixelCreate`, `webPixelUpdate`, `webPixelDelete`, `webPixel`; `ErrorsWebPixelUserError`):

- the schema is real (graphql-core): a query naming a field Shopify does not have is refused with GraphQL's
  own validation errors, as Shopify's server does;
- every mutation needs the `write_pixels` and `read_customer_events` scopes, the query `read_pixels` (or
  `write_pixels`): without them the field is null and `errors` carries `ACCESS_DENIED`, HTTP 200 as Shopify
  answers;
- one pixel per app and shop: a second webPixelCreate is the user error `TAKEN`; an unknown id `NOT_FOUND`;
- `settings` (the JSON scalar: a JSON string, as Shopify's examples send it, or an object) is checked against
  the settings definition of the app's web pixel extension (`extensions/*/shopify.extension.toml` of this
  repository, `type = "web_pixel_extension"`): every declared field present, a string, and nothing else —
  `INVALID_SETTINGS` otherwise; output settings are a JSON string.
"""

from __future__ import annotations

import json
import threading
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from graphql import GraphQLError, GraphQLScalarType, build_schema, graphql_sync
from werkzeug.wrappers import Response

from sandbox.routing import Context, json_response, read_json_object

EXTENSIONS_DIR = Path(__file__).resolve().parents[2] / "extensions"
WRITE_SCOPES = ("write_pixels", "read_customer_events")

SDL = """
scalar JSON
enum ErrorsWebPixelUserErrorCode {
  BLANK INVALID_CONFIGURATION_JSON INVALID_RUNTIME_CONTEXT INVALID_SETTINGS INVALID_SETTINGS_DEFINITION
  NO_EXTENSION NOT_FOUND TAKEN UNEXPECTED_ERROR UNABLE_TO_DELETE
}
type ErrorsWebPixelUserError { code: ErrorsWebPixelUserErrorCode field: [String!] message: String! }
type WebPixel { id: ID! settings: JSON! }
input WebPixelInput { settings: JSON! }
type WebPixelCreatePayload { userErrors: [ErrorsWebPixelUserError!]! webPixel: WebPixel }
type WebPixelUpdatePayload { userErrors: [ErrorsWebPixelUserError!]! webPixel: WebPixel }
type WebPixelDeletePayload { deletedWebPixelId: ID userErrors: [ErrorsWebPixelUserError!]! }
type Query { webPixel(id: ID): WebPixel }
type Mutation {
  webPixelCreate(webPixel: WebPixelInput!): WebPixelCreatePayload
  webPixelUpdate(id: ID!, webPixel: WebPixelInput!): WebPixelUpdatePayload
  webPixelDelete(id: ID!): WebPixelDeletePayload
}
"""


def _json_out(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


@cache
def schema():
    built = build_schema(SDL)
    json_scalar = built.type_map["JSON"]
    assert isinstance(json_scalar, GraphQLScalarType)
    # graphql-core 3.2 names these serialize/parse_*, 3.3 coerce_*: set whichever this version reads.
    for name in ("serialize", "coerce_output_value"):
        setattr(json_scalar, name, _json_out)
    for name in ("parse_value", "coerce_input_value"):
        setattr(json_scalar, name, lambda value: value)
    for name in ("parse_literal", "coerce_input_literal"):
        setattr(json_scalar, name, _json_literal)
    return built


def _json_literal(node, variables=None):
    from graphql import value_from_ast_untyped

    return value_from_ast_untyped(node, variables)


@cache
def settings_definition() -> dict[str, dict[str, Any]] | None:
    """The fields the app's web pixel extension declares (None: the app has no such extension)."""
    for toml_file in sorted(EXTENSIONS_DIR.glob("*/shopify.extension.toml")):
        config = tomllib.loads(toml_file.read_text())
        if config.get("type") == "web_pixel_extension":
            return dict((config.get("settings") or {}).get("fields") or {})
    return None


class PixelState:
    """One web pixel per (shop, app)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pixels: dict[tuple[str, str], dict[str, Any]] = {}
        self._next = 1

    def reset(self) -> None:
        with self._lock:
            self.pixels.clear()
            self._next = 1

    def list(self, shop: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [{"shop": s, "app": a, **pixel} for (s, a), pixel in self.pixels.items() if shop in (None, s)]


def _user_error(code: str, field: list[str] | None, message: str) -> dict[str, Any]:
    return {"code": code, "field": field, "message": message}


NOT_JSON = "The provided settings is not a valid JSON."
NOT_FOUND = "The record with the ID used as the input value couldn't be found."


def _settings_check(raw: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(settings, None) or (None, user error)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None, _user_error(
                "INVALID_CONFIGURATION_JSON", ["settings"], "The provided settings is not a valid JSON."
            )
    if not isinstance(raw, dict):
        return None, _user_error(
            "INVALID_CONFIGURATION_JSON", ["settings"], "The provided settings is not a valid JSON."
        )
    fields = settings_definition()
    if fields is None:
        return None, _user_error("NO_EXTENSION", None, "No extension found.")
    problems = [name for name in raw if name not in fields]
    for name, spec in fields.items():
        value = raw.get(name)
        minimum = next((int(v["value"]) for v in spec.get("validations", []) if v.get("name") == "min"), 0)
        if not isinstance(value, str) or len(value) < minimum:
            problems.append(name)
    if problems:
        return None, _user_error(
            "INVALID_SETTINGS", ["settings"],
            "The provided settings does not match the expected settings definition on the app.",
        )  # fmt: skip
    return raw, None


def _access(info, field: str, needed: tuple[str, ...]) -> None:
    granted = set(info.context["scope"].split(","))
    missing = [scope for scope in needed if scope not in granted]
    if field == "webPixel" and granted & {"read_pixels", "write_pixels"}:
        missing = []
    if missing:
        required = ". Also: ".join(f"`{scope}` access scope" for scope in needed) + "."
        raise GraphQLError(
            f"Access denied for {field} field. Required access: {required}",
            extensions={
                "code": "ACCESS_DENIED",
                "documentation": "https://shopify.dev/api/usage/access-scopes",
                "requiredAccess": required,
            },
        )


def _resolvers(ctx: Context, shop: str, app: str) -> tuple[dict[str, Any], dict[str, Any]]:
    pixels: PixelState = ctx.state.shopify.pixel_state

    def web_pixel(_root, info, id=None):
        _access(info, "webPixel", ("read_pixels",))
        pixel = pixels.pixels.get((shop, app))
        if pixel is None or (id is not None and pixel["id"] != id):
            return None
        return pixel

    def create(_root, info, webPixel):
        _access(info, "webPixelCreate", WRITE_SCOPES)
        settings, error = _settings_check(webPixel.get("settings"))
        if error:
            return {"userErrors": [error], "webPixel": None}
        with pixels._lock:
            if (shop, app) in pixels.pixels:
                taken = _user_error("TAKEN", None, "The input value is already taken.")
                return {"userErrors": [taken], "webPixel": None}
            pixel = {"id": f"gid://shopify/WebPixel/{pixels._next}", "settings": settings}
            pixels._next += 1
            pixels.pixels[(shop, app)] = pixel
        return {"userErrors": [], "webPixel": pixel}

    def update(_root, info, id, webPixel):
        _access(info, "webPixelUpdate", WRITE_SCOPES)
        settings, error = _settings_check(webPixel.get("settings"))
        if error:
            return {"userErrors": [error], "webPixel": None}
        with pixels._lock:
            pixel = pixels.pixels.get((shop, app))
            if pixel is None or pixel["id"] != id:
                missing = _user_error(
                    "NOT_FOUND", ["id"], "The record with the ID used as the input value couldn't be found."
                )
                return {"userErrors": [missing], "webPixel": None}
            pixel["settings"] = settings
        return {"userErrors": [], "webPixel": pixel}

    def delete(_root, info, id):
        _access(info, "webPixelDelete", WRITE_SCOPES)
        with pixels._lock:
            pixel = pixels.pixels.get((shop, app))
            if pixel is None or pixel["id"] != id:
                missing = _user_error(
                    "NOT_FOUND", ["id"], "The record with the ID used as the input value couldn't be found."
                )
                return {"userErrors": [missing], "deletedWebPixelId": None}
            del pixels.pixels[(shop, app)]
        return {"userErrors": [], "deletedWebPixelId": id}

    return {"webPixel": web_pixel}, {"webPixelCreate": create, "webPixelUpdate": update, "webPixelDelete": delete}


def graphql_endpoint(ctx: Context, shop: str, version: str) -> Response:
    from sandbox.providers.shopify import _admin_token

    record, refused = _admin_token(ctx, shop)
    if refused is not None:
        return refused
    payload = read_json_object(ctx.request)
    query, variables = payload.get("query"), payload.get("variables") or {}
    if not isinstance(query, str) or not isinstance(variables, dict):
        return json_response({"errors": [{"message": "Parse error: a query string is required"}]}, status=400)
    queries, mutations = _resolvers(ctx, shop.lower(), record["app"])
    result = graphql_sync(
        schema(),
        query,
        root_value=None,
        context_value={"scope": record["scope"]},
        variable_values=variables,
        field_resolver=lambda root, info, **args: _resolve(root, info, queries, mutations, args),
    )
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = [error.formatted for error in result.errors]
    if result.data is not None or not result.errors:
        body["data"] = result.data
    return json_response(body)


def _resolve(root, info, queries, mutations, args):
    if root is None:
        table = mutations if info.parent_type.name == "Mutation" else queries
        return table[info.field_name](root, info, **args)
    return root.get(info.field_name) if isinstance(root, dict) else getattr(root, info.field_name, None)


def control_pixels(ctx: Context) -> Response:
    """`{"shop"?}`: the web pixels apps created, with their settings."""
    shop = str(read_json_object(ctx.request).get("shop") or "").lower() or None
    return json_response({"pixels": ctx.state.shopify.pixel_state.list(shop)})
