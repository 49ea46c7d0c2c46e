"""Dashboard pages rendered once for every member, with each member's own parts put in per request.

A page over the marts is the same for every member of a merchant, but for a few parts: the store switcher
and sign-out form in the top bar, the messages of their session, and in the forms under the dashboard their
CSRF token and the page they are on. The rest, which is nearly all of the rendering, is rendered once
without the request (`page_shell`, cached by dashboards.views per merchant, range and state of the marts)
and stored as the text between those parts; `page_html` renders just the parts, for the request at hand.

Rendered without the request, a shell cannot hold anything of the member who happened to ask first.
"""

from __future__ import annotations

import re
import secrets

from django.http import HttpRequest
from django.template.loader import get_template, render_to_string
from django.utils.safestring import mark_safe

# name: the template rendered for each request, with the request. A shell template shows part <name>
# with `{{ parts.<name> }}`.
MEMBER_PARTS = {
    "topbar": "dashboards/_member_topbar.html",
    "messages": "_messages.html",
    "csrf_token": "_csrf_token.html",
    "this_page": "_this_page.html",
}

Shell = tuple[str, ...]  # text, part name, text, part name, ..., text


def page_shell(template: str, context: dict) -> Shell:
    """Render `template` without the request and split it where the member's parts go."""
    # A fresh marker per render: no text the page shows (all of it escaped, so no `<!--` either) can
    # contain it.
    marker = secrets.token_hex(8)
    parts = {name: mark_safe(f"<!--{marker}:{name}-->") for name in MEMBER_PARTS}  # noqa: S308 — constant text
    html = render_to_string(template, {**context, "parts": parts})
    return tuple(re.split(f"<!--{marker}:([a-z_]+)-->", html))


def page_html(request: HttpRequest, shell: Shell, context: dict) -> str:
    """The whole page for this request: the shell with the member's parts rendered into it."""
    rendered: dict[str, str] = {}  # a part shown twice (the CSRF token of two forms) is rendered once
    pieces = []
    for i, piece in enumerate(shell):  # odd places hold part names
        if i % 2:
            if piece not in rendered:
                rendered[piece] = get_template(MEMBER_PARTS[piece]).render(context, request)
            piece = rendered[piece]
        pieces.append(piece)
    return "".join(pieces)
