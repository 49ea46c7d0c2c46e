"""Re-encrypt every stored secret under the first FIELD_ENCRYPTION_KEYS key.

Rotation: put the new key first (`new,old`), run this, check it reports 0 values on the old key,
then drop the old key from the setting. Safe to interrupt and rerun; a second run changes nothing.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from connectors import services
from connectors.crypto import EncryptionConfigError, keyring
from connectors.models import SECRET_FIELDS
from connectors.selectors import secret_key_usage

# Any constant: PostgreSQL advisory lock id, so two overlapping runs do not fight over rows.
LOCK_ID = 0x6B657973


class Command(BaseCommand):
    help = "Re-encrypt every connector secret under the first FIELD_ENCRYPTION_KEYS key, in batches."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size: int, **options) -> None:
        if not 1 <= batch_size <= 10_000:
            raise CommandError("--batch-size must be between 1 and 10000")
        try:
            ring = keyring()
        except EncryptionConfigError as exc:
            raise CommandError(str(exc)) from exc
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_ID])
            if not cursor.fetchone()[0]:
                raise CommandError("another rotate_encryption_keys run holds the lock; exiting")
        try:
            self._rotate(batch_size)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_ID])
        self._report(ring)

    def _rotate(self, batch_size: int) -> None:
        for model_name in SECRET_FIELDS:
            checked = rewritten = 0
            last_pk = 0
            while True:
                try:
                    rows, changed, last_pk = services.secrets_rotate_batch(
                        model_name=model_name, after_pk=last_pk, batch_size=batch_size
                    )
                except Exception as exc:  # a value we cannot decrypt: stop loudly, keep what is done
                    raise CommandError(f"{model_name} after id {last_pk}: {exc}") from exc
                if not rows:
                    break
                checked += rows
                rewritten += changed
                self.stdout.write(f"{model_name}: {checked} rows checked, {rewritten} values re-encrypted")
            self.stdout.write(f"{model_name}: done, {checked} rows, {rewritten} values re-encrypted")

    def _report(self, ring) -> None:
        usage = secret_key_usage()
        self.stdout.write(f"key {ring.primary_id} (primary): {usage.pop(ring.primary_id, 0)} values")
        for key_id in ring.retired_ids:
            self.stdout.write(f"key {key_id} (retired): {usage.pop(key_id, 0)} values still use it")
        for key_id, count in usage.items():
            self.stderr.write(f"key {key_id} (NOT CONFIGURED): {count} values cannot be decrypted")
        if usage:
            raise CommandError("some secrets use keys that are not configured")
