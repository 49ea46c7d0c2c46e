"""The signing key survives restarts when it is kept in a file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from clerk_backend_api.security import AuthenticateRequestOptions, AuthStatus, authenticate_request

from sandbox import SandboxControl, SandboxServer, SandboxState
from sandbox.keys import load_or_create_key_pair, write_public_key


def test_missing_key_file_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "clerk_private.pem"

    pair = load_or_create_key_pair(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key_pair(path).public_pem == pair.public_pem


def test_token_from_before_a_restart_still_verifies(tmp_path: Path, azp: str) -> None:
    key_file = tmp_path / "clerk_private.pem"
    seed = [{"id": "user_a", "email_addresses": [{"email_address": "a@example.com"}]}]

    state = SandboxState(clerk_key_pair=load_or_create_key_pair(key_file), clerk_seed_users=seed)
    with SandboxServer(state=state) as first:
        token = SandboxControl(first.url).mint_session_token("user_a", azp)
        kid_before = first.state.clerk.key_pair.kid

    state = SandboxState(clerk_key_pair=load_or_create_key_pair(key_file), clerk_seed_users=seed)
    with SandboxServer(state=state) as second:
        public_pem = SandboxControl(second.url).jwt_public_key()
        kid_after = second.state.clerk.key_pair.kid

    request = type("Req", (), {"headers": {"Authorization": f"Bearer {token}"}})()
    result = authenticate_request(request, AuthenticateRequestOptions(jwt_key=public_pem, authorized_parties=[azp]))
    assert result.status == AuthStatus.SIGNED_IN
    assert kid_after == kid_before


def test_public_key_file_matches_served_pem(tmp_path: Path) -> None:
    pair = load_or_create_key_pair(tmp_path / "private.pem")

    write_public_key(pair, tmp_path / "out" / "public.pem")

    assert (tmp_path / "out" / "public.pem").read_text() == pair.public_pem


def test_unreadable_key_file_is_an_error_not_a_silent_new_key(tmp_path: Path) -> None:
    path = tmp_path / "clerk_private.pem"
    path.write_text("not a key")

    with pytest.raises(ValueError):
        load_or_create_key_pair(path)
