"""Erasing one customer from the warehouse: raw_<key> tables, the landed tables, and the dbt schemas.

Personal values are pseudonymised, not deleted, so the store's counts and revenue stay what they were: every
identifier is replaced by a keyed digest of itself (salted SHA-256 with a per-store salt derived from
PRIVACY_REDACTION_KEY), the same function in every table, so an order still joins to "its" (now anonymous)
customer, a session to its orders and a Klaviyo event to its profile. Values that only describe the person
(names, addresses, IP address, user agent) are set to NULL. The replacements cannot be turned back into the
values: they are truncated digests under a key that never leaves the app.

The same functions run in two modes:
- `values`: the request's identifiers (and those found linked to them) are matched as plain values, to find
  and rewrite every row the store holds now (raw, landed, the dbt schemas);
- `digests`: only the salted digests are kept (``landed._redactions``), and rows that land later (Airbyte
  re-syncing the customer from Shopify) are matched on the digest of their values and rewritten the same way,
  by the load step (`landed_rows_redact`, called from analytics/landing.py), before dbt reads them. So every
  later build, full refresh included, produces the same pseudonyms and none of the values.

Identifier kinds (one letter, part of the digest's salt so two kinds never collide):
``c`` Shopify customer id, ``e`` email (the digest is over the SHA-256 of the normalised address, the shape the
web pixel sends as email_sha256), ``p`` phone (digits only), ``t`` a provider's id for the person (Klaviyo
profile, Attentive subscriber, the pixel's client id), ``o`` an order id named by the request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import psycopg
from django.conf import settings
from psycopg import sql
from psycopg.rows import dict_row

from analytics.landing import LANDED_SCHEMA
from analytics.raw_schema import RAW_TABLES, raw_schema_name

REGISTRY = "_redactions"
MODEL_SCHEMAS = ("analytics_staging", "analytics")
PSEUDO_EMAIL_DOMAIN = "redacted.invalid"

# What a hold's data category is for each raw table (compliance.holds categories).
TABLE_CATEGORIES = {table: ("events" if table.startswith("web_") else "raw") for table in RAW_TABLES}


def store_salt(merchant_id: int) -> str:
    """The store's salt: derived, not stored, so it exists nowhere a dump of the warehouse could carry it."""
    return hmac.new(
        settings.PRIVACY_REDACTION_KEY.encode(), f"redaction-salt:{merchant_id}".encode(), hashlib.sha256
    ).hexdigest()


def normalise_email(value: str | None) -> str:
    return (value or "").strip().lower()


def normalise_phone(value: str | None) -> str:
    return re.sub(r"\D", "", value or "")


def email_hash(email: str) -> str:
    return hashlib.sha256(normalise_email(email).encode()).hexdigest()


def digest(salt: str, kind: str, value: str) -> str:
    """What the registry keeps: the same as the SQL `_digest` (salt || kind || ':' || value)."""
    return hashlib.sha256(f"{salt}{kind}:{value}".encode()).hexdigest()


@dataclass
class Identifiers:
    """One customer's identifiers in a store, normalised (emails lower-cased, phones digits only)."""

    customer_ids: set[int] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    text_ids: set[str] = field(default_factory=set)
    order_ids: set[int] = field(default_factory=set)

    def add(self, *, customer_id=None, email=None, phone=None, text_id=None) -> None:
        if customer_id not in (None, ""):
            try:
                value = int(customer_id)
            except (TypeError, ValueError):
                value = None
            if value is not None and value > 0:  # pseudonyms are negative: never an identifier to chase
                self.customer_ids.add(value)
        if email and normalise_email(email) and not normalise_email(email).endswith("@" + PSEUDO_EMAIL_DOMAIN):
            self.emails.add(normalise_email(email))
        if phone and normalise_phone(phone):
            self.phones.add(normalise_phone(phone))
        if text_id and not str(text_id).startswith("redacted-"):
            self.text_ids.add(str(text_id))

    def params(self) -> dict:
        return {
            "v_c": sorted(self.customer_ids),
            "v_e": sorted(self.emails),
            "v_h": sorted(email_hash(e) for e in self.emails),
            "v_p": sorted(self.phones),
            "v_t": sorted(self.text_ids),
            "v_o": sorted(self.order_ids),
        }

    def digests(self, salt: str) -> list[tuple[str, str]]:
        out = [("c", digest(salt, "c", str(v))) for v in self.customer_ids]
        out += [("e", digest(salt, "e", email_hash(v))) for v in self.emails]
        out += [("p", digest(salt, "p", v)) for v in self.phones]
        out += [("t", digest(salt, "t", v)) for v in self.text_ids]
        out += [("o", digest(salt, "o", str(v))) for v in self.order_ids]
        return sorted(set(out))

    def __bool__(self) -> bool:
        return bool(self.customer_ids or self.emails or self.phones or self.text_ids or self.order_ids)


# --- the SQL pieces ---------------------------------------------------------------------------------------

S = sql.SQL


def _digest(kind: str, expr: sql.Composable) -> sql.Composable:
    return S("encode(sha256(convert_to(%(salt)s || {} || ({})::text, 'UTF8')), 'hex')").format(
        sql.Literal(f"{kind}:"), expr
    )


def _ehash(expr: sql.Composable) -> sql.Composable:
    return S("encode(sha256(convert_to(lower(trim({})), 'UTF8')), 'hex')").format(expr)


def _pnorm(expr: sql.Composable) -> sql.Composable:
    return S("nullif(regexp_replace({}, '[^0-9]', '', 'g'), '')").format(expr)


def pseudo_id(expr: sql.Composable) -> sql.Composable:
    """A negative bigint (Shopify's ids are positive): 60 bits of the digest."""
    return S("(-(('x' || substr({}, 1, 15))::bit(60)::bigint))").format(_digest("c", expr))


def _pseudo_email_from_hash(hash_expr: sql.Composable) -> sql.Composable:
    return S("('redacted-' || substr({}, 1, 24) || {})").format(
        _digest("e", S("lower({})").format(hash_expr)), sql.Literal("@" + PSEUDO_EMAIL_DOMAIN)
    )


def pseudo_email(expr: sql.Composable) -> sql.Composable:
    return S("(case when nullif(trim({e}), '') is null then {e} else {p} end)").format(
        e=expr, p=_pseudo_email_from_hash(_ehash(expr))
    )


def pseudo_email_sha256(expr: sql.Composable) -> sql.Composable:
    """email_sha256 of the pseudonymous address: what the pixel would send for it, so sessions still stitch."""
    return S("encode(sha256(convert_to({}, 'UTF8')), 'hex')").format(_pseudo_email_from_hash(expr))


def pseudo_phone(expr: sql.Composable) -> sql.Composable:
    return S("(case when {n} is null then null else 'redacted-' || substr({d}, 1, 24) end)").format(
        n=_pnorm(expr), d=_digest("p", _pnorm(expr))
    )


def pseudo_text(expr: sql.Composable) -> sql.Composable:
    return S("(case when {e} is null then null else 'redacted-' || substr({d}, 1, 24) end)").format(
        e=expr, d=_digest("t", expr)
    )


def _match(kind: str, expr: sql.Composable, mode: str) -> sql.Composable:
    """Whether `expr` (a value of `kind`) is one of the customer's: by value, or by the registry's digests."""
    if mode == "values":
        if kind == "e":
            return S("lower(trim({})) = any(%(v_e)s)").format(expr)
        if kind == "h":
            return S("lower({}) = any(%(v_h)s)").format(expr)
        if kind == "p":
            return S("{} = any(%(v_p)s)").format(_pnorm(expr))
        if kind in ("c", "o"):
            # A bigint column compares as bigint, a JSON field as text: either way the lookup index serves it.
            cast = "::bigint[]" if isinstance(expr, sql.Identifier) else "::text[]"
            return S("{} = any(" + f"%(v_{kind})s" + cast + ")").format(expr)
        return S("{} = any(%(v_t)s)").format(expr)
    if kind == "e":
        return S("{} = any(%(d_e)s)").format(_digest("e", _ehash(expr)))
    if kind == "h":
        return S("{} = any(%(d_e)s)").format(_digest("e", S("lower({})").format(expr)))
    if kind == "p":
        return S("{} = any(%(d_p)s)").format(_digest("p", _pnorm(expr)))
    return S("{} = any(" + f"%(d_{kind})s" + ")").format(_digest(kind, expr))


I = sql.Identifier  # noqa: E741  (read as "identifier" throughout the rules below)


def _col(name: str) -> sql.Composable:
    return I(name)


def _json(col: str, *path: str) -> sql.Composable:
    return S("({} #>> {})").format(I(col), sql.Literal("{" + ",".join(path) + "}"))


_PERSON_KEYS = ["first_name", "last_name", "name", "phone", "address", "addresses", "default_address",
                "location", "properties", "external_id", "organization", "title", "image", "anonymous_id",
                "note", "ip", "browser_ip", "billing_address", "shipping_address"]  # fmt: skip


def _strip(col: str, keys: list[str]) -> sql.Composable:
    return S("({} - {}::text[])").format(I(col), sql.Literal(keys))


@dataclass(frozen=True)
class Rule:
    """How one raw table holds a customer: the (kind, value) pairs that say a row is theirs, and the rewrite."""

    matches: tuple[tuple[str, sql.Composable], ...]
    sets: tuple[tuple[str, sql.Composable], ...]


def _attentive_rule(with_payload: bool = False) -> Rule:
    if with_payload:
        ext, email, phone = (_json("payload", "subscriber", k) for k in ("external_id", "email", "phone"))
        subscriber = S(
            "(case when {p} ? 'subscriber' then ({p} - 'subscriber') || jsonb_build_object('subscriber',"
            " jsonb_strip_nulls(jsonb_build_object('external_id', {x}, 'email', {e}, 'phone', {ph}))) else {p} end)"
        ).format(p=I("payload"), x=pseudo_text(ext), e=pseudo_email(email), ph=pseudo_phone(phone))
        return Rule(matches=(("t", ext), ("e", email), ("p", phone)), sets=(("payload", subscriber),))
    ext, email, phone = I("subscriber_external_id"), I("subscriber_email"), I("subscriber_phone")
    return Rule(
        matches=(("t", ext), ("e", email), ("p", phone)),
        sets=(
            ("subscriber_external_id", pseudo_text(ext)),
            ("subscriber_email", pseudo_email(email)),
            ("subscriber_phone", pseudo_phone(phone)),
        ),
    )


def _rules() -> dict[str, Rule]:
    order_customer = S(
        "(case when customer is null or jsonb_typeof(customer) <> 'object' then customer else"
        " {stripped} || jsonb_strip_nulls(jsonb_build_object('id', {id}, 'email', {email})) end)"
    ).format(
        stripped=_strip("customer", [*_PERSON_KEYS, "id", "email"]),
        id=S("to_jsonb({})").format(pseudo_id(_json("customer", "id"))),
        email=pseudo_email(_json("customer", "email")),
    )
    profile_attrs = S(
        "(case when attributes is null then null else {stripped} ||"
        " jsonb_strip_nulls(jsonb_build_object('email', {email}, 'phone_number', {phone})) end)"
    ).format(
        stripped=_strip("attributes", [*_PERSON_KEYS, "email", "phone_number"]),
        email=pseudo_email(_json("attributes", "email")),
        phone=pseudo_phone(_json("attributes", "phone_number")),
    )
    profile_ref = _json("relationships", "profile", "data", "id")
    rules = {
        "shopify_customers": Rule(
            matches=(("c", I("id")), ("e", I("email")), ("p", I("phone"))),
            sets=(
                ("id", pseudo_id(I("id"))),
                ("email", pseudo_email(I("email"))),
                ("phone", pseudo_phone(I("phone"))),
                ("first_name", S("null")),
                ("last_name", S("null")),
                ("default_address", S("null")),
                ("tags", S("null")),
            ),
        ),
        "shopify_orders": Rule(
            matches=(
                ("c", _json("customer", "id")),
                ("e", I("email")),
                ("e", _json("customer", "email")),
                ("o", I("id")),
            ),
            sets=(("email", pseudo_email(I("email"))), ("customer", order_customer), ("browser_ip", S("null"))),
        ),
        "klaviyo_profiles": Rule(
            matches=(("t", I("id")), ("e", _json("attributes", "email")), ("p", _json("attributes", "phone_number"))),
            sets=(("id", pseudo_text(I("id"))), ("attributes", profile_attrs), ("links", S("null"))),
        ),
        "klaviyo_events": Rule(
            matches=(("t", profile_ref),),
            sets=(
                (
                    "relationships",
                    S("jsonb_set(relationships, '{{profile,data,id}}', to_jsonb({}))").format(pseudo_text(profile_ref)),
                ),
                (
                    "attributes",
                    S(
                        "(case when attributes ? 'event_properties' then jsonb_set(attributes, '{{event_properties}}',"
                        " (attributes -> 'event_properties') - {}::text[]) else attributes end)"
                    ).format(
                        sql.Literal(
                            [
                                "email",
                                "$email",
                                "phone_number",
                                "$phone_number",
                                "first_name",
                                "last_name",
                                "$first_name",
                                "$last_name",
                            ]
                        )
                    ),
                ),
            ),
        ),
        "attentive_other_events": _attentive_rule(with_payload=True),
        "web_sessions": Rule(
            matches=(("c", I("customer_id")), ("e", I("email")), ("t", I("anonymous_id"))),
            sets=(
                ("customer_id", pseudo_id(I("customer_id"))),
                ("email", pseudo_email(I("email"))),
                ("anonymous_id", pseudo_text(I("anonymous_id"))),
            ),
        ),
        "web_events": Rule(
            matches=(("c", I("customer_id")), ("t", I("client_id")), ("h", I("email_sha256"))),
            sets=(
                ("customer_id", pseudo_id(I("customer_id"))),
                ("client_id", pseudo_text(I("client_id"))),
                ("email_sha256", pseudo_email_sha256(I("email_sha256"))),
                ("ip_prefix", S("null")),
                ("user_agent", S("null")),
                (
                    "properties",
                    S("(case when properties is null then null else {} end)").format(
                        _strip("properties", [*_PERSON_KEYS, "email", "customer_email"])
                    ),
                ),
            ),
        ),
    }
    for table in RAW_TABLES:
        if table.startswith("attentive_") and table != "attentive_other_events":
            rules[table] = _attentive_rule()
    return rules


RULES: dict[str, Rule] = _rules()


def _predicate(rule: Rule, mode: str) -> sql.Composable:
    return S("({})").format(S(" or ").join(_match(kind, expr, mode) for kind, expr in rule.matches))


def _update(target: sql.Composable, rule: Rule, mode: str, extra_where: sql.Composable) -> sql.Composable:
    sets = S(", ").join(S("{} = {}").format(I(col), expr) for col, expr in rule.sets)
    return S("update {t} set {sets} where {extra} and {pred}").format(
        t=target, sets=sets, extra=extra_where, pred=_predicate(rule, mode)
    )


# --- lookup indexes -----------------------------------------------------------------------------------------
# A redaction must find one customer's rows among millions (Klaviyo events, web sessions) in seconds: each value a
# rule matches on (in `values` mode) has an expression index, in every store's raw table and in the landed
# tables (after merchant_id), so the OR of a rule's matches is a BitmapOr of index scans, not a scan. The load
# step creates them (analytics/landing.py), as it creates the extraction-time index.


def _indexed_expression(kind: str, expr: sql.Composable) -> sql.Composable:
    if kind == "e":
        return S("lower(trim({}))").format(expr)
    if kind == "h":
        return S("lower({})").format(expr)
    if kind == "p":
        return _pnorm(expr)
    return expr


def lookup_index_statements(schema: str, table: str, *, landed: bool) -> list[tuple[str, sql.Composable]]:
    """(index name, its idempotent DDL) for each value a table's rule matches on."""
    rule = RULES.get(table)
    if rule is None:
        return []
    out, seen = [], set()
    for kind, expr in rule.matches:
        indexed = _indexed_expression(kind, expr)
        key = repr(indexed)
        if key in seen:
            continue
        seen.add(key)
        name = f"{table}_pii_{len(out)}"
        lead = S("merchant_id, ") if landed else S("")
        out.append(
            (name, S("create index if not exists {} on {} ({}({}))").format(
                I(name), sql.Identifier(schema, table), lead, indexed
            ))
        )  # fmt: skip
    return out


def lookup_indexes_ensure(conn: psycopg.Connection, *, schema: str, tables: Iterable[str], landed: bool) -> list[str]:
    """Create the lookup indexes `tables` lack in `schema`; one catalog query when none is missing. Returns the
    tables that could not be indexed (not ours to index: the caller logs it once)."""
    existing = {
        name for (name,) in conn.execute("select indexname from pg_indexes where schemaname = %s", [schema]).fetchall()
    }
    failed = []
    for table in tables:
        for name, statement in lookup_index_statements(schema, table, landed=landed):
            if name in existing:
                continue
            try:
                with conn.transaction():
                    conn.execute(statement)
            except psycopg.Error:
                failed.append(table)
                break
    return failed


# --- model (dbt) tables: by column name --------------------------------------------------------------------

_MODEL_COLUMNS: dict[str, tuple[tuple[str, ...], object]] = {
    # column -> (kinds that match it, rewrite)
    "customer_id": (("c",), pseudo_id),
    "email": (("e",), pseudo_email),
    "email_sha256": (("h",), pseudo_email_sha256),
    "phone": (("p",), pseudo_phone),
    "phone_number": (("p",), pseudo_phone),
    "profile_id": (("t",), pseudo_text),
    "subscriber_external_id": (("t",), pseudo_text),
    "anonymous_id": (("t",), pseudo_text),
    "client_id": (("t",), pseudo_text),
    "recipient_id": (("t",), pseudo_text),
}
_MODEL_NULLED = ("first_name", "last_name", "browser_ip", "ip_prefix", "user_agent")


def model_tables(conn: psycopg.Connection) -> dict[tuple[str, str], set[str]]:
    """{(schema, table): columns} of every dbt table keyed by merchant_id (views follow their inputs)."""
    rows = conn.execute(
        "select n.nspname, c.relname, array_agg(a.attname::text) from pg_catalog.pg_class c"
        " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
        " join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped"
        " where n.nspname = any(%s) and c.relkind in ('r', 'p') group by 1, 2",
        [list(MODEL_SCHEMAS)],
    ).fetchall()
    return {(s, t): set(cols) for s, t, cols in rows if "merchant_id" in cols}


def _model_match(kind: str, col: str) -> sql.Composable:
    """A plain comparison, so the models' indexes on (merchant_id, customer_id / email / recipient_id /
    anonymous_id) serve it: the dbt models store these normalised (lower-cased, trimmed, bigint ids)."""
    if kind == "c":
        return S("{} = any(%(v_c)s::bigint[])").format(I(col))
    if kind in ("e", "h", "t"):
        return S("{} = any(" + f"%(v_{kind})s" + ")").format(I(col))
    return _match(kind, I(col), "values")


def _model_update(schema: str, table: str, columns: set[str]) -> sql.Composable | None:
    matched = [(col, kinds, fn) for col, (kinds, fn) in _MODEL_COLUMNS.items() if col in columns]
    if not matched:
        return None
    conditions = {col: S(" or ").join(_model_match(k, col) for k in kinds) for col, kinds, _ in matched}
    sets = [
        S("{c} = case when {m} then {p} else {c} end").format(c=I(col), m=conditions[col], p=fn(I(col)))
        for col, _, fn in matched
    ]
    sets += [S("{} = null").format(I(col)) for col in _MODEL_NULLED if col in columns]
    any_match = S(" or ").join(S("({})").format(c) for c in conditions.values())
    return S("update {} set {} where merchant_id = %(merchant_id)s and ({})").format(
        sql.Identifier(schema, table), S(", ").join(sets), any_match
    )


# --- finding a customer's linked identifiers ---------------------------------------------------------------


# (table, the columns read, how a row adds to the identifiers); in order, so emails and phones found on the
# customer record are used to find profiles, subscribers and browsers.
def _discover_specs() -> list[tuple[str, sql.Composable, sql.Composable, str]]:
    return [
        ("shopify_customers", S("id::text, email, phone, null"),
         S(" or ").join([_match("c", I("id"), "values"), _match("e", I("email"), "values")]), "cep"),
        ("shopify_orders", S("customer ->> 'id', coalesce(email, customer ->> 'email'), null, null"),
         S(" or ").join([_match("c", _json("customer", "id"), "values"), _match("e", I("email"), "values"),
                         _match("o", I("id"), "values")]), "cep"),
        ("klaviyo_profiles", S("null, attributes ->> 'email', attributes ->> 'phone_number', id"),
         _predicate(RULES["klaviyo_profiles"], "values"), "cept"),
        *[(t, S("null, subscriber_email, subscriber_phone, subscriber_external_id"),
           _predicate(RULES[t], "values"), "cept")
          for t in RAW_TABLES if t.startswith("attentive_") and t != "attentive_other_events"],
        ("web_sessions", S("customer_id::text, email, null, anonymous_id"),
         S(" or ").join([_match("c", I("customer_id"), "values"), _match("e", I("email"), "values")]), "cet"),
        ("web_events", S("customer_id::text, null, null, client_id"),
         S(" or ").join([_match("c", I("customer_id"), "values"), _match("h", I("email_sha256"), "values")]), "ct"),
    ]  # fmt: skip


def _targets(
    conn: psycopg.Connection, merchant_id: int, key: str
) -> list[tuple[str, str, sql.Composable, sql.Composable]]:
    """(raw table, 'raw'|'landed', relation, row filter) for each table of the store that exists."""
    schemas = [raw_schema_name(key), LANDED_SCHEMA]
    present = {
        (s, t)
        for s, t in conn.execute(
            "select table_schema, table_name from information_schema.tables where table_schema = any(%s)", [schemas]
        ).fetchall()
    }
    out = []
    for table in RAW_TABLES:
        if (raw_schema_name(key), table) in present:
            out.append((table, "raw", sql.Identifier(raw_schema_name(key), table), S("true")))
        if (LANDED_SCHEMA, table) in present:
            out.append((table, "landed", sql.Identifier(LANDED_SCHEMA, table), S("merchant_id = %(merchant_id)s")))
    return out


def identifiers_discover(conn: psycopg.Connection, *, merchant_id: int, key: str, seed: Identifiers) -> Identifiers:
    """The seed's identifiers plus every one linked to them in the store's raw and landed rows."""
    found = Identifiers(
        customer_ids=set(seed.customer_ids), emails=set(seed.emails), phones=set(seed.phones),
        text_ids=set(seed.text_ids), order_ids=set(seed.order_ids),
    )  # fmt: skip
    targets = _targets(conn, merchant_id, key)
    for table, columns, predicate, _ in _discover_specs():
        for t, _layer, relation, row_filter in targets:
            if t != table:
                continue
            rows = conn.execute(
                S("select {} from {} where {} and ({})").format(columns, relation, row_filter, predicate),
                {"merchant_id": merchant_id, **found.params()},
            ).fetchall()
            for customer_id, email, phone, text_id in rows:
                found.add(customer_id=customer_id, email=email, phone=phone, text_id=text_id)
    return found


# --- the registry -----------------------------------------------------------------------------------------


def registry_ensure(conn: psycopg.Connection) -> None:
    conn.execute(S("create schema if not exists {}").format(I(LANDED_SCHEMA)))
    conn.execute(
        S(
            "create table if not exists {} (merchant_id integer not null, kind text not null,"
            " digest text not null, request_id bigint, recorded_at timestamptz not null default now(),"
            " primary key (merchant_id, kind, digest))"
        ).format(sql.Identifier(LANDED_SCHEMA, REGISTRY))
    )


def registry_record(
    conn: psycopg.Connection, *, merchant_id: int, digests: Iterable[tuple[str, str]], request_id: int | None
) -> None:
    registry_ensure(conn)
    with conn.cursor() as cur:
        cur.executemany(
            S(
                "insert into {} (merchant_id, kind, digest, request_id) values (%s, %s, %s, %s) on conflict do nothing"
            ).format(sql.Identifier(LANDED_SCHEMA, REGISTRY)),
            [(merchant_id, kind, d, request_id) for kind, d in digests],
        )


def registry_get(conn: psycopg.Connection, merchant_ids: list[int]) -> dict[int, dict[str, list[str]]]:
    """{merchant id: {kind: digests}} for the stores with anything redacted (one statement; none when empty)."""
    exists = conn.execute("select to_regclass(%s)", [f"{LANDED_SCHEMA}.{REGISTRY}"]).fetchone()[0]
    if not exists or not merchant_ids:
        return {}
    out: dict[int, dict[str, list[str]]] = {}
    for mid, kind, d in conn.execute(
        S("select merchant_id, kind, digest from {} where merchant_id = any(%s)").format(
            sql.Identifier(LANDED_SCHEMA, REGISTRY)
        ),
        [merchant_ids],
    ).fetchall():
        out.setdefault(mid, {}).setdefault(kind, []).append(d)
    return out


def _digest_params(merchant_id: int, digests: Mapping[str, list[str]]) -> dict:
    return {"salt": store_salt(merchant_id), "merchant_id": merchant_id,
            **{f"d_{k}": list(digests.get(k, [])) for k in "ceopt"}}  # fmt: skip


# --- the work ---------------------------------------------------------------------------------------------


@dataclass
class RedactionOutcome:
    rows: dict[str, int] = field(default_factory=dict)  # "<layer>.<table>" -> rows rewritten
    skipped_tables: list[str] = field(default_factory=list)  # tables a hold kept
    seconds: dict[str, float] = field(default_factory=dict)  # "<layer>.<table>" -> time its statement took


def customer_redact(
    conn: psycopg.Connection,
    *,
    merchant_id: int,
    key: str,
    identifiers: Identifiers,
    held_categories: set[str] = frozenset(),
    request_id: int | None = None,
) -> RedactionOutcome:
    """Rewrite the customer's rows in raw, landed and the dbt tables, and record the digests; one transaction.

    `identifiers` is what `identifiers_discover` found. Tables whose category a legal hold covers for this
    customer are left as they are (the caller records the exemption); the dbt tables too when the raw data is
    held, since they are built from it.
    """
    outcome = RedactionOutcome()
    params = {"salt": store_salt(merchant_id), "merchant_id": merchant_id, **identifiers.params()}
    with conn.transaction():
        registry_record(
            conn, merchant_id=merchant_id, digests=identifiers.digests(params["salt"]), request_id=request_id
        )
        for table, layer, relation, row_filter in _targets(conn, merchant_id, key):
            rule = RULES.get(table)
            if rule is None:
                continue
            if TABLE_CATEGORIES[table] in held_categories:
                outcome.skipped_tables.append(f"{layer}.{table}")
                continue
            started = time.perf_counter()
            cur = conn.execute(_update(relation, rule, "values", row_filter), params)
            outcome.seconds[f"{layer}.{table}"] = time.perf_counter() - started
            if cur.rowcount:
                outcome.rows[f"{layer}.{table}"] = cur.rowcount
        if "raw" in held_categories:
            outcome.skipped_tables.append("models")
        else:
            for (schema, table), columns in sorted(model_tables(conn).items()):
                statement = _model_update(schema, table, columns)
                if statement is None:
                    continue
                started = time.perf_counter()
                cur = conn.execute(statement, params)
                outcome.seconds[f"{schema}.{table}"] = time.perf_counter() - started
                if cur.rowcount:
                    outcome.rows[f"{schema}.{table}"] = cur.rowcount
    return outcome


def landed_rows_redact(
    conn: psycopg.Connection,
    *,
    merchant_id: int,
    key: str,
    digests: Mapping[str, list[str]],
    tables: Mapping[str, object],
    since_load_id: int,
) -> dict[str, int]:
    """Re-apply the store's recorded redactions to rows that just landed (and to their raw copies).

    `tables`: {raw table: the extraction time its load read from (None: all)}; `since_load_id`: the landed
    high-water mark before this load.
    Called by the load step for a store with registry entries, inside its load transaction, before dbt reads
    the rows: matching is on the digests only (the values are gone). Rows already rewritten never match again
    (their values are pseudonyms), so this is idempotent.
    """
    params = _digest_params(merchant_id, digests)
    done: dict[str, int] = {}
    for table, since in tables.items():
        rule = RULES.get(table)
        if rule is None:
            continue
        raw_filter = S("true") if since is None else S("_airbyte_extracted_at > {}").format(sql.Literal(since))
        for layer, relation, row_filter in (
            ("landed", sql.Identifier(LANDED_SCHEMA, table),
             S("merchant_id = %(merchant_id)s and _load_id > {}").format(sql.Literal(since_load_id))),
            ("raw", sql.Identifier(raw_schema_name(key), table), raw_filter),
        ):  # fmt: skip
            cur = conn.execute(_update(relation, rule, "digests", row_filter), params)
            if cur.rowcount:
                done[f"{layer}.{table}"] = cur.rowcount
    return done


def customer_rows_collect(
    conn: psycopg.Connection, *, merchant_id: int, key: str, identifiers: Identifiers
) -> dict[str, dict[str, list[dict]]]:
    """Every row the store holds about the customer: {"raw"|"landed"|"models": {table: [row, ...]}}."""
    params = {"salt": store_salt(merchant_id), "merchant_id": merchant_id, **identifiers.params()}
    out: dict[str, dict[str, list[dict]]] = {"raw": {}, "landed": {}, "models": {}}
    with conn.cursor(row_factory=dict_row) as cur:
        for table, layer, relation, row_filter in _targets(conn, merchant_id, key):
            rule = RULES.get(table)
            if rule is None:
                continue
            cur.execute(
                S("select * from {} where {} and {}").format(relation, row_filter, _predicate(rule, "values")), params
            )
            rows = cur.fetchall()
            if rows:
                out[layer][table] = rows
        for (schema, table), columns in sorted(model_tables(conn).items()):
            matched = [(col, kinds) for col, (kinds, _) in _MODEL_COLUMNS.items() if col in columns]
            if not matched:
                continue
            pred = S(" or ").join(_model_match(k, col) for col, kinds in matched for k in kinds)
            cur.execute(
                S("select * from {} where merchant_id = %(merchant_id)s and ({})").format(
                    sql.Identifier(schema, table), pred
                ),
                params,
            )
            rows = cur.fetchall()
            if rows:
                out["models"][f"{schema}.{table}"] = rows
    return out


def store_erase(
    conn: psycopg.Connection, *, merchant_id: int, key: str, held_categories: set[str] = frozenset()
) -> dict[str, int]:
    """shop/redact: drop the store's raw schema and delete its rows from landed and the dbt tables.

    With the raw category held the raw schema and landed rows stay (the caller records why) and so do the dbt
    tables built from them; held events (web_*) keep those tables' rows and the raw schema.
    """
    done: dict[str, int] = {}
    held_categories = set(held_categories) & set(TABLE_CATEGORIES.values())  # what the warehouse holds
    with conn.transaction():
        schema = raw_schema_name(key)
        if not held_categories:
            exists = conn.execute("select to_regnamespace(%s)", [schema]).fetchone()[0]
            if exists:
                conn.execute(S("drop schema {} cascade").format(I(schema)))
                done[schema] = 1
        else:
            for table in RAW_TABLES:
                if TABLE_CATEGORIES[table] in held_categories:
                    continue
                if conn.execute("select to_regclass(%s)", [f"{schema}.{table}"]).fetchone()[0]:
                    conn.execute(S("drop table {}").format(sql.Identifier(schema, table)))
                    done[f"{schema}.{table}"] = 1
        for table in RAW_TABLES:
            if TABLE_CATEGORIES[table] in held_categories:
                continue
            if conn.execute("select to_regclass(%s)", [f"{LANDED_SCHEMA}.{table}"]).fetchone()[0]:
                cur = conn.execute(
                    S("delete from {} where merchant_id = %s").format(sql.Identifier(LANDED_SCHEMA, table)),
                    [merchant_id],
                )
                done[f"landed.{table}"] = cur.rowcount
        if not held_categories:
            for bookkeeping in ("_loads", "_load_watermarks", REGISTRY):
                if conn.execute("select to_regclass(%s)", [f"{LANDED_SCHEMA}.{bookkeeping}"]).fetchone()[0]:
                    conn.execute(
                        S("delete from {} where merchant_id = %s").format(sql.Identifier(LANDED_SCHEMA, bookkeeping)),
                        [merchant_id],
                    )
        if "raw" not in held_categories:
            for (schema_name, table), _ in sorted(model_tables(conn).items()):
                cur = conn.execute(
                    S("delete from {} where merchant_id = %s").format(sql.Identifier(schema_name, table)), [merchant_id]
                )
                if cur.rowcount:
                    done[f"{schema_name}.{table}"] = cur.rowcount
    return done
