"""Bot user agents: the crawler-user-agents list (github.com/monperrus/crawler-user-agents, MIT), vendored.

`data/crawler-user-agents.json` is that project's list as of commit 7c7f9f25 (2026-07-02), unchanged; refresh it
by copying the newer file over (the same list is published on PyPI as `crawler-user-agents`, importable as
`crawleruseragents`, if the project prefers a dependency to a vendored file). Its ~1,500 patterns are matched
case-sensitively, as the project's own `is_crawler` does by default, as one alternation compiled once.

A batch's events come from one browser, so one user agent: the answer is cached per string.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

PATTERNS_FILE = Path(__file__).resolve().parent / "data" / "crawler-user-agents.json"

# Automation the list does not name but a collector sees (headless browsers, HTTP libraries). A real
# shopper's browser never sends these.
_EXTRA = (r"HeadlessChrome", r"PhantomJS", r"python-requests", r"python-httpx", r"curl/", r"Wget/", r"Go-http-client")


@functools.cache
def _matcher() -> re.Pattern[str]:
    entries = json.loads(PATTERNS_FILE.read_text())
    return re.compile("|".join([*(entry["pattern"] for entry in entries), *_EXTRA]))


@functools.lru_cache(maxsize=4096)
def is_bot(user_agent: str) -> bool:
    """True for a known crawler's or automation's user agent, and for none at all (browsers always send one)."""
    if not user_agent.strip():
        return True
    return _matcher().search(user_agent) is not None


def pattern_instances() -> list[str]:
    """The example user agents the list ships with each pattern (for tests)."""
    return [ua for entry in json.loads(PATTERNS_FILE.read_text()) for ua in entry.get("instances", [])]
