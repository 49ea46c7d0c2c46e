"""manage.py rotate_encryption_keys: two keys, rotate, retire the old one — nothing lost."""

from __future__ import annotations

from io import StringIO

import psycopg
import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from connectors.crypto import decrypt_secret, key_id_for, secret_key_id
from connectors.management.commands.rotate_encryption_keys import LOCK_ID
from connectors.models import ConnectorCredential
from tests.connectors.factories import CredentialFactory

pytestmark = pytest.mark.django_db


def run(**options) -> str:
    out = StringIO()
    call_command("rotate_encryption_keys", stdout=out, stderr=out, **options)
    return out.getvalue()


def plaintexts() -> dict[int, tuple[str, str]]:
    return {
        c.pk: (decrypt_secret(c.access_token_enc), decrypt_secret(c.refresh_token_enc))
        for c in ConnectorCredential.objects.all()
    }


def test_rotate_then_retire_the_old_key_loses_nothing(settings, encryption_key):
    for n in range(7):
        CredentialFactory(access_token=f"ya29.access-{n}", refresh_token=f"1//refresh-token-number-{n:04d}")
    before = plaintexts()
    old_id, new_key = key_id_for(encryption_key), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, encryption_key]

    output = run(batch_size=3)

    assert "ConnectorCredential: 3 rows checked" in output and "ConnectorCredential: 6 rows checked" in output
    assert f"key {key_id_for(new_key)} (primary): 14 values" in output
    assert f"key {old_id} (retired): 0 values still use it" in output
    assert "14 values re-encrypted" in output
    assert "0 values re-encrypted" in run()  # second run: nothing left to do

    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert plaintexts() == before
    assert {secret_key_id(c.access_token_enc) for c in ConnectorCredential.objects.all()} == {key_id_for(new_key)}


def test_report_counts_rows_still_on_a_retired_key(settings, encryption_key):
    CredentialFactory()
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, encryption_key]
    CredentialFactory()  # written under the new key
    from connectors.selectors import secret_key_usage

    assert secret_key_usage() == {key_id_for(encryption_key): 1, key_id_for(new_key): 1}


def test_a_secret_under_an_unknown_key_stops_the_run(settings, encryption_key):
    CredentialFactory()
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="not in FIELD_ENCRYPTION_KEYS"):
        run()


def test_an_overlapping_run_exits(settings):
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    with psycopg.connect(**{k: v for k, v in params.items() if k in ("dbname", "user", "host", "port", "password")},
                         autocommit=True) as other:  # fmt: skip
        other.execute("SELECT pg_advisory_lock(%s)", [LOCK_ID])
        with pytest.raises(CommandError, match="holds the lock"):
            run()


def test_bad_batch_size_is_refused():
    with pytest.raises(CommandError, match="batch-size"):
        run(batch_size=0)
