"""Browser tests: Playwright driving Debian's Chromium against the app served by pytest-django's live server.

Playwright's sync API runs an event loop in the test thread, which makes Django refuse ORM calls
("async context"); these tests only set up data from that thread, so the guard is lifted here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ARTIFACTS = Path(__file__).parent / "artifacts"

# As root Chromium needs --no-sandbox; the rest keep it off a network this machine does not have.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        # Not a skip: the browser tests are part of the suite. `make test` installs Chromium when it can.
        raise RuntimeError("Chromium is not installed: `apt-get install chromium` (make test does this as root)")
    return {**browser_type_launch_args, "executable_path": executable, "args": CHROMIUM_ARGS}


@pytest.fixture
def app_url(live_server, clerk, settings) -> str:
    """The live server's URL, with Clerk sign-in wired to the sandbox for that origin."""
    settings.CLERK_AUTHORIZED_PARTIES = [live_server.url]
    return live_server.url


@pytest.fixture
def screenshot(page):
    ARTIFACTS.mkdir(exist_ok=True)

    def take(name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
