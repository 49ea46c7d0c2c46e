"""`python -m sandbox --smtp-port N`, as `make run` starts it: mail sent to N shows up at /mail/."""

from __future__ import annotations

import os
import queue
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _read_until(proc: subprocess.Popen, prefix: str, timeout: float = 20.0) -> list[str]:
    # A reader thread, not select(): the text wrapper may hold several lines after one readline().
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if line.startswith(prefix):
            return seen
    raise AssertionError(f"no {prefix!r} line; got {seen}")


def test_smtp_port_starts_the_sink_beside_the_http_sandbox():
    smtp_port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--smtp-port", str(smtp_port)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        lines = _read_until(proc, "sandbox listening on ")
        assert f"sandbox smtp listening on 127.0.0.1:{smtp_port}\n" in lines
        url = lines[-1].removeprefix("sandbox listening on ").strip()
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", "via the CLI"
        message.set_content("hi")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as client:
            client.send_message(message)
        assert [m["subject"] for m in requests.get(f"{url}/_control/mail", timeout=5).json()] == ["via the CLI"]
        assert "via the CLI" in requests.get(f"{url}/mail/", timeout=5).text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_a_busy_smtp_port_stops_the_start_with_a_clear_message():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "sandbox", "--port", "0", "--smtp-port", str(port)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"cannot run the SMTP sink on 127.0.0.1:{port}" in result.stderr
