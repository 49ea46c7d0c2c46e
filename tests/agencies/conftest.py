"""Fixtures of tests/agencies. The portfolio's are in portfolio_fixtures.py (kept apart so the agency pieces
built in parallel each add their own module; merge them here)."""

from tests.agencies.portfolio_fixtures import *  # noqa: F403 — fixtures are found by name
