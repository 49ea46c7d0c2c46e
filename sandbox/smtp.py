"""An SMTP sink: accepts every message on a loopback port and keeps it in memory for people and tests.

``python -m sandbox --smtp-port 8025`` starts it beside the HTTP sandbox (``make run`` does);
``GET /mail/`` lists what arrived as a page, ``GET /_control/mail`` as JSON. Scripted failures
(``POST /_control/mail/faults {"code": 451, "times": 2, "stage"?: "data"}``) make the next messages be
refused with that reply at DATA, or at RCPT (``"stage": "rcpt"``: the recipient is refused), so a
client's handling of 4xx/5xx answers can be tested over a real SMTP conversation. In-process tests can
also act at the moment a message is accepted (``Mailbox.on_accept``), before the client hears "250".
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import html
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from aiosmtpd.controller import Controller
from werkzeug.wrappers import Response

from sandbox.routing import Context, Route, json_response, read_json_object

# aiosmtpd logs every SMTP command at INFO; the sandbox's own log line per message is enough.
logging.getLogger("mail.log").setLevel(logging.WARNING)
logger = logging.getLogger(__name__)

MAX_MESSAGES = 5000  # a long demo session must not grow without bound; the oldest go first
# Headers worth showing; the raw message is kept too, for tests that need everything.
SHOWN_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post")


def _content(part: Any) -> str:
    # SMTP carries CRLF line ends; people and tests read LF.
    return part.get_content().replace("\r\n", "\n") if part is not None else ""


class Mailbox:
    """Messages received and scripted refusals, shared by the SMTP thread and the HTTP threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._refusals: dict[str, list[list[int]]] = {"data": [], "rcpt": []}  # stage -> [[code, remaining]]
        self._on_accept: Callable[[dict[str, Any]], None] | None = None

    def add(self, *, mail_from: str, rcpt_tos: list[str], raw: bytes) -> dict[str, Any]:
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        text = parsed.get_body(preferencelist=("plain",))
        body_html = parsed.get_body(preferencelist=("html",))
        with self._lock:
            message = {
                "id": next(self._ids),
                "received_at": time.time(),
                "mail_from": mail_from,
                "rcpt_tos": list(rcpt_tos),
                "subject": str(parsed.get("Subject", "")),
                "headers": {name: str(parsed[name]).strip() for name in SHOWN_HEADERS if parsed[name] is not None},
                "text": _content(text),
                "html": _content(body_html),
                "raw": raw.decode("utf-8", errors="replace"),
            }
            self._messages.append(message)
            del self._messages[:-MAX_MESSAGES]
            return dict(message)

    def take_refusal(self, stage: str = "data") -> int | None:
        with self._lock:
            queue = self._refusals[stage]
            if not queue:
                return None
            head = queue[0]
            head[1] -= 1
            if head[1] <= 0:
                queue.pop(0)
            return head[0]

    def refuse(self, code: int, times: int, stage: str = "data") -> None:
        with self._lock:
            self._refusals[stage].append([code, times])

    def on_accept(self, callback: Callable[[dict[str, Any]], None] | None) -> None:
        """Call ``callback(message)`` for each accepted message after it is stored and before the client hears
        "250" (None removes it). Tests use it to break something at that exact moment: the server has the
        message, the client does not know yet. It runs on a thread of its own, not on the SMTP event loop,
        so it may block (a database call); an exception it raises is logged and the message still accepted.
        """
        with self._lock:
            self._on_accept = callback

    def accept_callback(self) -> Callable[[dict[str, Any]], None] | None:
        with self._lock:
            return self._on_accept

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self._messages]

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._refusals = {"data": [], "rcpt": []}
            self._ids = itertools.count(1)
            self._on_accept = None


class _Handler:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list) -> str:
        code = self.mailbox.take_refusal("rcpt")
        if code is not None:
            return f"{code} {'4.2.0' if code < 500 else '5.1.1'} scripted recipient refusal from the sandbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd calls hooks by this name
        code = self.mailbox.take_refusal()
        if code is not None:
            return f"{code} {'4.3.0' if code < 500 else '5.3.0'} scripted refusal from the sandbox"
        message = self.mailbox.add(
            mail_from=envelope.mail_from, rcpt_tos=envelope.rcpt_tos, raw=envelope.original_content
        )
        callback = self.mailbox.accept_callback()
        if callback is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(None, callback, message)
            except Exception:
                logger.exception("the on-accept callback of message %s failed", message["id"])
        return "250 2.0.0 Message accepted"


class SmtpSink:
    """aiosmtpd on its own thread and event loop; ``with SmtpSink(mailbox, port=...)`` in tests."""

    def __init__(self, mailbox: Mailbox | None = None, host: str = "127.0.0.1", port: int = 8025) -> None:
        self.mailbox = mailbox or Mailbox()
        self.host = host
        self.port = port
        self._controller: Controller | None = None

    def start(self) -> SmtpSink:
        # The server's own host name in its greeting; Django's client does not care.
        self._controller = Controller(
            _Handler(self.mailbox), hostname=self.host, port=self.port, server_hostname="sandbox.local"
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- HTTP routes --------------------------------------------------------------------------------


def mail_list(ctx: Context) -> Response:
    return json_response(ctx.state.mail.list())


def mail_clear(ctx: Context) -> Response:
    ctx.state.mail.clear()
    return Response(status=204)


def mail_faults_create(ctx: Context) -> Response:
    payload = read_json_object(ctx.request)
    code, times, stage = payload.get("code"), payload.get("times", 1), payload.get("stage", "data")
    if isinstance(code, bool) or not isinstance(code, int) or not 400 <= code <= 599:
        return json_response({"error": "code must be an SMTP reply code between 400 and 599"}, status=400)
    if isinstance(times, bool) or not isinstance(times, int) or not 1 <= times <= 10_000:
        return json_response({"error": "times must be an integer between 1 and 10000"}, status=400)
    if stage not in ("data", "rcpt"):
        return json_response({"error": "stage must be 'data' or 'rcpt'"}, status=400)
    ctx.state.mail.refuse(code, times, stage)
    return json_response({"code": code, "times": times, "stage": stage}, status=201)


def mail_page(ctx: Context) -> Response:
    messages = list(reversed(ctx.state.mail.list()))
    rows = []
    for m in messages:
        received = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m["received_at"]))
        headers = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in m["headers"].items())
        rows.append(
            f"<article><h2>#{m['id']} {html.escape(m['subject'])}</h2>"
            f"<p>{received} · to {html.escape(', '.join(m['rcpt_tos']))}</p>"
            f"<details><summary>Headers</summary><dl>{headers}</dl></details>"
            f"<pre>{html.escape(m['text'])}</pre>"
            # The HTML part is shown as source: rendering it would run whatever the app put in it.
            f"<details><summary>HTML part (source)</summary><pre>{html.escape(m['html'])}</pre></details>"
            "</article>"
        )
    body = "".join(rows) or "<p>No mail yet. Anything the app sends locally lands here.</p>"
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Sandbox mail</title>"
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto}"
        "article{border-top:1px solid #ccc;padding:.5rem 0}pre{white-space:pre-wrap;background:#f6f8fa;padding:.5rem}"
        "</style></head><body>"
        f"<h1>Mail received by the sandbox ({len(messages)})</h1>{body}</body></html>"
    )
    return Response(page, mimetype="text/html")


ROUTES = (
    Route("control.mail.page", "/mail/", ("GET",), mail_page, control=True),
    Route("control.mail.list", "/_control/mail", ("GET",), mail_list, control=True),
    Route("control.mail.clear", "/_control/mail", ("DELETE",), mail_clear, control=True),
    Route("control.mail.faults.create", "/_control/mail/faults", ("POST",), mail_faults_create, control=True),
)
