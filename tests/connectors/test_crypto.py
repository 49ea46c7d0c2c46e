import pytest
from cryptography.fernet import Fernet

from connectors import crypto


def test_round_trip_records_the_key_id(settings, encryption_key):
    value = crypto.encrypt_secret("ya29.secret")
    assert value.startswith(f"v1:{crypto.key_id_for(encryption_key)}:")
    assert "ya29.secret" not in value
    assert crypto.decrypt_secret(value) == "ya29.secret"


def test_a_missing_key_raises_instead_of_returning_ciphertext(settings):
    value = crypto.encrypt_secret("pk_secret")
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.SecretDecryptionError, match="not in FIELD_ENCRYPTION_KEYS"):
        crypto.decrypt_secret(value)


def test_a_wrong_key_with_the_same_id_raises(settings):
    value = crypto.encrypt_secret("pk_secret")
    key_id = crypto.secret_key_id(value)
    tampered = value[:-6] + ("AAAAAA" if not value.endswith("AAAAAA") else "BBBBBB")
    with pytest.raises(crypto.SecretDecryptionError, match=key_id):
        crypto.decrypt_secret(tampered)


@pytest.mark.parametrize("value", ["", "plain", "v1::x", "v2:abc:def", None])
def test_values_that_are_not_ours_raise(value):
    with pytest.raises(crypto.SecretDecryptionError):
        crypto.decrypt_secret(value)


def test_no_keys_configured_raises(settings):
    settings.FIELD_ENCRYPTION_KEYS = []
    with pytest.raises(crypto.EncryptionConfigError):
        crypto.encrypt_secret("x")


def test_a_malformed_key_raises(settings):
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    with pytest.raises(crypto.EncryptionConfigError, match="#0"):
        crypto.encrypt_secret("x")


def test_reencrypt_moves_to_the_first_key_and_keeps_the_plaintext(settings, encryption_key):
    old = crypto.encrypt_secret("1//refresh")
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, encryption_key]
    rotated = crypto.reencrypt_secret(old)
    assert crypto.secret_key_id(rotated) == crypto.key_id_for(new_key)
    assert crypto.reencrypt_secret(rotated) == rotated  # idempotent
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert crypto.decrypt_secret(rotated) == "1//refresh"


def test_mask_shows_at_most_the_last_four():
    assert crypto.mask_secret("pk_abcdefghijklmnop1234") == "••••1234"
    assert crypto.mask_secret("short") == "••••"
