"""The SMTP sink: a real SMTP conversation in, JSON and a page out, scripted refusals."""

from __future__ import annotations

import smtplib
import socket
import threading
from email.message import EmailMessage

import pytest
import requests

from sandbox import SandboxControl, SandboxServer
from sandbox.smtp import SmtpSink


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def sink(server: SandboxServer, control: SandboxControl):
    with SmtpSink(server.state.mail, port=_free_port()) as running:
        yield running


def _send(sink: SmtpSink, subject: str = "Hello <there>", to: str = "ada@example.com") -> None:
    message = EmailMessage()
    message["From"] = "App <app@example.com>"
    message["To"] = to
    message["Subject"] = subject
    message["List-Unsubscribe"] = "<https://app.example.com/u/1/>"
    message.set_content("plain body")
    message.add_alternative("<p>html <b>body</b></p>", subtype="html")
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as client:
        client.send_message(message)


def test_received_mail_is_listed_as_json(server, sink):
    _send(sink)
    [message] = requests.get(f"{server.url}/_control/mail", timeout=5).json()
    assert message["id"] == 1
    assert message["mail_from"] == "app@example.com"
    assert message["rcpt_tos"] == ["ada@example.com"]
    assert message["subject"] == "Hello <there>"
    assert message["headers"]["List-Unsubscribe"] == "<https://app.example.com/u/1/>"
    assert message["text"] == "plain body\n"
    assert message["html"] == "<p>html <b>body</b></p>\n"
    assert "Subject: Hello <there>" in message["raw"]


def test_the_page_lists_mail_escaped_newest_first(server, sink):
    _send(sink, subject="first")
    _send(sink, subject="<script>alert(1)</script>")
    page = requests.get(f"{server.url}/mail/", timeout=5)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Mail received by the sandbox (2)" in page.text
    assert "<script>alert(1)</script>" not in page.text
    assert page.text.index("#2 &lt;script&gt;") < page.text.index("#1 first")


def test_empty_page_says_so(server, control):
    assert "No mail yet" in requests.get(f"{server.url}/mail/", timeout=5).text


def test_scripted_refusals_then_acceptance(server, control, sink):
    requests.post(f"{server.url}/_control/mail/faults", json={"code": 451, "times": 2}, timeout=5).raise_for_status()
    for _ in range(2):
        with pytest.raises(smtplib.SMTPDataError) as caught:
            _send(sink)
        assert caught.value.smtp_code == 451
    _send(sink)
    assert len(requests.get(f"{server.url}/_control/mail", timeout=5).json()) == 1


@pytest.mark.parametrize("payload", [{"code": 250}, {"code": "451"}, {"code": 451, "times": 0}])
def test_bad_fault_payloads_are_refused(server, control, payload):
    assert requests.post(f"{server.url}/_control/mail/faults", json=payload, timeout=5).status_code == 400


def test_reset_and_delete_clear_the_mailbox(server, control, sink):
    _send(sink)
    control.reset()
    assert requests.get(f"{server.url}/_control/mail", timeout=5).json() == []
    _send(sink)
    assert requests.delete(f"{server.url}/_control/mail", timeout=5).status_code == 204
    assert requests.get(f"{server.url}/_control/mail", timeout=5).json() == []


def test_mail_routes_are_not_in_the_call_log(server, control, sink):
    requests.get(f"{server.url}/mail/", timeout=5)
    requests.get(f"{server.url}/_control/mail", timeout=5)
    assert control.calls() == []


def test_scripted_recipient_refusal(server, control, sink):
    payload = {"code": 550, "stage": "rcpt"}
    assert requests.post(f"{server.url}/_control/mail/faults", json=payload, timeout=5).json() == {
        "code": 550,
        "times": 1,
        "stage": "rcpt",
    }
    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        _send(sink)
    assert caught.value.recipients["ada@example.com"][0] == 550
    _send(sink)
    assert len(requests.get(f"{server.url}/_control/mail", timeout=5).json()) == 1


def test_unknown_stage_is_refused(server, control):
    payload = {"code": 550, "stage": "helo"}
    assert requests.post(f"{server.url}/_control/mail/faults", json=payload, timeout=5).status_code == 400


def test_on_accept_runs_after_the_message_is_stored_and_before_the_client_hears_250(server, control, sink):
    mailbox = server.state.mail
    client_returned = threading.Event()
    seen = []

    def callback(message):
        # The server already has the message; the client is still waiting for the reply to DATA.
        seen.append((message["subject"], [m["id"] for m in mailbox.list()], client_returned.is_set()))

    mailbox.on_accept(callback)
    _send(sink, subject="first")
    client_returned.set()
    assert seen == [("first", [1], False)]

    mailbox.on_accept(None)
    _send(sink, subject="second")
    assert len(seen) == 1


def test_a_failing_on_accept_callback_still_accepts_the_message(server, control, sink, caplog):
    def callback(message):
        raise RuntimeError("boom")

    server.state.mail.on_accept(callback)
    _send(sink)  # no SMTP error: the reply is still 250
    assert len(server.state.mail.list()) == 1
    assert "the on-accept callback of message 1 failed" in caplog.text


def test_reset_removes_the_on_accept_callback(server, control, sink):
    calls = []
    server.state.mail.on_accept(calls.append)
    control.reset()
    _send(sink)
    assert calls == []
