import json
import os
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings as django_settings
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from config.celery import app as celery_app
from connectors.crypto import BAD_KEY

pytestmark = pytest.mark.django_db

CLERK_KEY_INVALID = "CLERK_JWT_KEY is not a PEM public key (-----BEGIN PUBLIC KEY----- ...)"
CLERK_PEM = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


def test_healthz_answers_without_touching_dependencies(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ok_when_everything_is_reachable(client, clerk):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "broker": "ok",
        "sign_in": "ok",
        "encryption": "ok",
    }


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "CLERK_JWT_KEY (or CLERK_JWT_KEY_FILE) is required: Clerk's PEM public key (dashboard, API keys)"),
        ("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----", CLERK_KEY_INVALID),
    ],
    ids=["missing", "malformed"],
)
def test_readyz_says_sign_in_is_unavailable_without_a_usable_clerk_key(client, clerk, settings, key, problem):
    settings.CLERK_JWT_KEY = key
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["sign_in"] == f"sign-in unavailable: {problem}"
    assert body["checks"]["database"] == "ok"


def test_readyz_says_sign_in_is_unavailable_without_authorized_parties(client, clerk, settings):
    settings.CLERK_AUTHORIZED_PARTIES = []
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["sign_in"] == "sign-in unavailable: CLERK_AUTHORIZED_PARTIES is empty"


def test_readyz_says_encryption_is_unavailable_with_a_malformed_key(client, clerk, settings):
    good = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [good, "not-a-fernet-key"]
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["encryption"] == "encryption unavailable: " + BAD_KEY.format(index=1)
    assert "not-a-fernet-key" not in response.content.decode()
    assert good not in response.content.decode()


def test_readyz_lists_what_the_app_cannot_do_without_being_unready(client, clerk, settings):
    settings.META_APP_ID = ""
    settings.CLERK_WEBHOOK_SECRET = ""
    response = client.get("/readyz")
    assert response.status_code == 200
    limited = response.json()["limited"]
    assert limited["meta_connect"] == (
        "META_APP_ID or META_APP_SECRET is not set: Meta cannot be connected or refreshed"
    )
    assert limited["clerk_webhooks"] == "CLERK_WEBHOOK_SECRET is not set: /webhooks/clerk/ answers 503"
    assert "clerk_api" not in limited  # the clerk fixture sets CLERK_SECRET_KEY


def test_readyz_of_a_production_process_refused_by_the_database_says_so(django_db_setup):
    # As the owner of the tables, a production process gets no database (compliance/roles.py); /readyz must say
    # that, not "database unreachable: ImproperlyConfigured".
    owner_url = urlsplit(os.environ["DATABASE_OWNER_URL"])
    owner_url = owner_url._replace(path="/" + django_settings.DATABASES["default"]["NAME"]).geturl()
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "XDG_RUNTIME_DIR") if k in os.environ}
    env.update(
        ENV_FILE=os.devnull,
        DJANGO_DEV="0",
        SECRET_KEY="x7#Lq9!vR2@mZ4$wT8%nB6^kY1&hC3*pF5(dG0)sJ_-+=aQeUiOoPlKjHgF",
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        AGENCY_TOKEN_PEPPER="prod-agency-token-pepper-0123456789abcdef",
        DATABASE_URL=owner_url,
        REDIS_URL="redis://127.0.0.1:6379/0",
        ALLOWED_HOSTS="testserver",
        CLERK_AUTHORIZED_PARTIES="https://app.example.com",
        CLERK_JWT_KEY=CLERK_PEM,
        SHOPIFY_API_KEY="prod-shopify-api-key",
        SHOPIFY_API_SECRET="prod-shopify-api-secret-0123456789",
        SHOPIFY_SCOPES="read_orders",
        SHOPIFY_API_VERSION="2026-01",
        SHOPIFY_APP_URL="https://app.example.com",
        AIRBYTE_API_URL="https://api.airbyte.com/v1",
        AIRBYTE_CLIENT_ID="airbyte-application-id",
        AIRBYTE_CLIENT_SECRET="airbyte-application-secret",
        AIRBYTE_WORKSPACE_ID="5ae6b09b-fdec-41af-aaf7-7d94cfc33ef6",
        LOG_LEVEL="CRITICAL",
    )
    probe = (
        "import json; from django.test import Client; r = Client().get('/readyz'); "
        "print(json.dumps({'status': r.status_code, 'body': r.json()}))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", probe],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == 503
    database = answer["body"]["checks"]["database"]
    assert database.startswith("database refused: refusing to use the database: the database role ")
    assert database.endswith("Connect as the app's own role (README, Database roles).")
    assert answer["body"]["checks"]["migrations"] == "migration state unknown: the database is refused (see database)"
    assert answer["body"]["checks"]["sign_in"] == "ok"


def test_readyz_fails_when_the_broker_is_unreachable(client, monkeypatch):
    # broker_write_url first: its getter falls back on broker_url, so patched after it, the value monkeypatch
    # restores at teardown would be the dead URL, and every later /readyz would find the broker unreachable.
    monkeypatch.setattr(celery_app.conf, "broker_write_url", None)
    monkeypatch.setattr(celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"].startswith("broker unreachable")
    assert body["checks"]["database"] == "ok"


def test_readyz_fails_when_a_migration_is_not_applied(client):
    # compliance's newest migration (whichever it is: every app's migrations keep growing) is not applied
    [(app, name)] = MigrationLoader(connection, ignore_no_migrations=True).graph.leaf_nodes("compliance")
    MigrationRecorder.Migration.objects.filter(app=app, name=name).delete()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "1 migration(s) not applied"


def test_api_schema_and_docs_are_served_locally(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/merchants/{merchant_id}/" in schema.json()["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower()


def test_favicon_is_served_from_static(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response.url == "/static/favicon.svg"
