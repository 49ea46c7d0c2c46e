"""`python -m sandbox` as `make run` starts it, and the demo seed file it loads."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from clerk_backend_api import Clerk

from sandbox import SandboxControl, SandboxServer, SandboxState

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_USERS = REPO_ROOT / "sandbox" / "data" / "demo_users.json"


def _wait_for_url(proc: subprocess.Popen, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("sandbox listening on "):
                return line.removeprefix("sandbox listening on ").strip()
            if not line and proc.poll() is not None:
                break
    raise AssertionError(f"sandbox did not start; stderr: {proc.stderr.read() if proc.poll() is not None else ''}")


@pytest.fixture
def run_sandbox(tmp_path: Path) -> Iterator:
    procs: list[subprocess.Popen] = []

    def start(*extra: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "--port", "0", *extra],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "SANDBOX_CLERK_SECRET_KEY"},
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_module_serves_demo_users_keeps_its_key_and_stops_on_sigterm(tmp_path: Path, run_sandbox, azp: str) -> None:
    key_file, public_out = tmp_path / "k" / "private.pem", tmp_path / "k" / "public.pem"
    args = ("--private-key", str(key_file), "--public-key-out", str(public_out), "--seed", str(DEMO_USERS))

    first = run_sandbox(*args)
    url = _wait_for_url(first)
    users = requests.get(f"{url}/clerk/_dev/users", timeout=5).json()
    assert [u["id"] for u in users] == ["user_demo_owner", "user_demo_admin", "user_demo_viewer", "user_demo_agency"]
    assert SandboxControl(url).jwt_public_key() == public_out.read_text()
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=10) == 0
    public_before = public_out.read_text()

    second = run_sandbox(*args)
    url = _wait_for_url(second)
    assert SandboxControl(url).jwt_public_key() == public_before
    second.send_signal(signal.SIGINT)
    assert second.wait(timeout=10) == 0
    # One access line per request, and never the secret key.
    log = second.stderr.read()
    assert "GET /clerk/_dev/jwt_public_key -> 200" in log


def test_module_refuses_a_bad_seed_file(tmp_path: Path, run_sandbox) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps([{"id": "user_x", "primary_email": "nobody@example.com"}]))

    proc = run_sandbox("--seed", str(seed))

    assert proc.wait(timeout=20) == 2
    assert "not one of the user's email addresses" in proc.stderr.read()


def test_demo_users_parse_in_the_sdk() -> None:
    with SandboxServer(state=SandboxState(clerk_seed_users=json.loads(DEMO_USERS.read_text()))) as server:
        clerk_sdk = Clerk(bearer_auth="sk_test_demo", server_url=f"{server.url}/clerk/v1")
        viewer = clerk_sdk.users.get(user_id="user_demo_viewer")
        owner = clerk_sdk.users.get(user_id="user_demo_owner")

    primary = next(e for e in viewer.email_addresses if e.id == viewer.primary_email_address_id)
    assert (viewer.first_name, viewer.last_name) == ("Vera", "Viewer")
    assert primary.email_address == "viewer@demo-store.example"
    assert sorted(e.verification.status.value for e in viewer.email_addresses) == ["unverified", "verified"]
    assert owner.email_addresses[0].email_address == "owner@demo-store.example"
