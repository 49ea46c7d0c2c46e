"""The SMTP sink: a real SMTP conversation in, JSON and a page out, scripted refusals."""

from __future__ import annotations

import smtplib
import socket
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
