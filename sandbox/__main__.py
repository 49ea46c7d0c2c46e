"""Run the sandbox in the foreground: ``python -m sandbox --port 8001 ...`` (see --help).

Prints ``sandbox listening on <url>`` once it accepts requests, so a supervisor (``make run``, a
test) can wait for that line, and with ``--port 0`` learn the port picked.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from sandbox.keys import RsaKeyPair, load_or_create_key_pair, write_public_key
from sandbox.providers.clerk import SeedError
from sandbox.server import SandboxServer
from sandbox.smtp import SmtpSink
from sandbox.state import SandboxState


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Local stand-ins for provider APIs.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument(
        "--private-key",
        type=Path,
        help="PEM file with Clerk's signing key; created (mode 0600) if missing. Default: a fresh key in memory",
    )
    parser.add_argument("--public-key-out", type=Path, help="write the public key PEM here for the web app")
    parser.add_argument("--seed", type=Path, help="JSON list of Clerk user specs to load at start and on reset")
    parser.add_argument(
        "--clerk-secret-key",
        default=os.environ.get("SANDBOX_CLERK_SECRET_KEY") or None,
        help="only accept this Clerk secret key (default: $SANDBOX_CLERK_SECRET_KEY, else any sk_test_/sk_live_)",
    )
    parser.add_argument(
        "--smtp-port",
        type=int,
        help="also run an SMTP sink on this port (same host); received mail is listed at /mail/",
    )
    return parser.parse_args(argv)


def _load_seed(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise SeedError(f"{path} must hold a JSON list of user specs")
    return data


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    try:
        key_pair = load_or_create_key_pair(args.private_key) if args.private_key else RsaKeyPair.generate()
        seed = _load_seed(args.seed) if args.seed else []
        state = SandboxState(clerk_key_pair=key_pair, clerk_secret_key=args.clerk_secret_key, clerk_seed_users=seed)
    except (OSError, ValueError) as exc:  # SeedError and JSON errors are ValueErrors
        print(f"sandbox: cannot start: {exc}", file=sys.stderr)
        return 2
    if args.public_key_out:
        write_public_key(key_pair, args.public_key_out)

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    server = SandboxServer(args.host, args.port, state)
    try:
        server.start()
    except OSError as exc:
        print(f"sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    smtp = None
    if args.smtp_port is not None:
        try:
            smtp = SmtpSink(state.mail, host=args.host, port=args.smtp_port).start()
        except (OSError, RuntimeError) as exc:
            server.stop()
            print(f"sandbox: cannot run the SMTP sink on {args.host}:{args.smtp_port}: {exc}", file=sys.stderr)
            return 2
        print(f"sandbox smtp listening on {args.host}:{args.smtp_port}", flush=True)
    print(f"sandbox listening on {server.url}", flush=True)
    # A bounded wait keeps the main thread returning to the interpreter, where signal handlers run.
    while not stop.wait(0.5):
        pass
    if smtp is not None:
        smtp.stop()
    server.stop()
    print("sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
