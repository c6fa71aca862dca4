"""An embedded PostgreSQL (the ``pgserver`` package) for a laptop with no database configured.

Its data lives in ``<data dir>/pg`` and survives restarts. Every ``returns`` process started on
the same data folder shares the one server, and the server stops when the last of them ends.

How a process knows whether another one still uses the server (the decision): a small file
``<data dir>/pg.users`` lists the processes using it, each as ``[pid, start time]``. It is read
and rewritten only under an exclusive ``flock`` on itself, so a process joining and a process
leaving never race. A process adds itself when it first asks for the server's URL (starting
the server when it is not running) and removes itself when it ends; whoever removes the last
live entry stops the server (``pg_ctl stop -m fast``: sessions are cut, nothing is lost).
Entries of processes that are gone (killed, crashed: no exit code ran) are dropped whenever the
file is read; the start time tells a live process from a later one that got the same pid.

pgserver's own bookkeeping is not used for this: its handle list (``.handle_pids.json``) never
forgets a process that died without running ``atexit`` (SIGTERM's default action, SIGKILL), so
one killed process kept the server running for good. The server is therefore opened with
``cleanup_mode=None`` and stopped here.

Processes leave by ``release_embedded()``: the CLI calls it when a command ends (it turns SIGTERM
into a normal exit first, so ``finally`` runs), and ``atexit`` calls it as a safety net.
``returns serve --workers N`` holds the server in the supervising process too, which outlives
its workers; a worker that is killed is simply dropped as dead.

pgserver keeps its interprocess lock under platformdirs' user runtime folder, and platformdirs
warns (``RuntimeDirWarning``) on every start when ``XDG_RUNTIME_DIR`` is unset (servers,
containers, CI). Its fallback, a private ``runtime-<uid>`` folder in the temporary directory, is
what we want anyway, so that one warning is silenced while pgserver is imported.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import IO

USERS_FILE = "pg.users"

_held: dict[Path, tuple[str, str | None]] = {}
"""The data folders (resolved ``pg`` folders) this process uses: URL and pgserver's system user."""


def embedded_database_url(data_dir: Path) -> str:
    """The URL of the embedded server under ``data_dir``, started if needed; this process is
    counted as a user until ``release_embedded()`` (or its exit)."""
    pgdata = (data_dir / "pg").resolve()
    if pgdata in _held:
        return _held[pgdata][0]
    pgserver = import_pgserver()
    pgdata.mkdir(parents=True, exist_ok=True)
    with _signals_deferred():  # a Ctrl-C mid-start would leave a server nobody holds, or half an initdb
        with _users(pgdata.parent) as users:
            server = pgserver.PostgresServer(pgdata, cleanup_mode=None)  # starts it unless it runs
            users.append(_me())
        if not _held:
            atexit.register(release_embedded)
        _held[pgdata] = (server.get_uri(), server.system_user)
    return _held[pgdata][0]


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is over, then act as they would have (found by an
    outside review: a command stopped while the server started left it running, unheld, and one
    stopped during initdb left a data folder no later command could start)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[signal.Signals] = []
    previous = {
        signum: signal.signal(signum, lambda number, _: caught.append(signal.Signals(number)))
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in caught:
            signal.raise_signal(signum)


def release_embedded(data_dir: Path | None = None) -> None:
    """This process no longer uses the embedded server under ``data_dir`` (default: every one it
    opened); a server nobody else uses is stopped. Safe to call more than once."""
    for pgdata in [(data_dir / "pg").resolve()] if data_dir is not None else list(_held):
        if pgdata not in _held:
            continue
        _url, system_user = _held.pop(pgdata)
        with _users(pgdata.parent) as users:
            users[:] = [user for user in users if user != _me()]
            if not users:
                _stop(pgdata, system_user)


@contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """The embedded server's URL for the length of a ``with`` block (tests, tools)."""
    try:
        yield embedded_database_url(data_dir)
    finally:
        release_embedded(data_dir)


def import_pgserver() -> ModuleType:
    """pgserver, imported quietly: no runtime-folder warning, no INFO chatter."""
    with warnings.catch_warnings():
        if not os.environ.get("XDG_RUNTIME_DIR"):
            from platformdirs import RuntimeDirWarning

            warnings.simplefilter("ignore", RuntimeDirWarning)
        import pgserver
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # its INFO lines would drown the service's
    return pgserver


def postgres_processes(folder: Path) -> list[int]:
    """Pids of the PostgreSQL processes running from a folder: its postmaster (named by ``-D``)
    and the backends (whose working directory is the data folder). For tests and operators."""
    import psutil

    folder = folder.resolve()
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline", "cwd"]):
        if proc.info["name"] != "postgres":
            continue
        cwd = proc.info["cwd"] or ""
        if cwd == str(folder) or cwd.startswith(f"{folder}/") or any(str(folder) in a for a in proc.info["cmdline"] or ()):
            found.append(proc.pid)
    return found


def _me() -> list[float]:
    return [os.getpid(), _started(os.getpid()) or 0.0]


def _started(pid: int) -> float | None:
    """When a live process started (None when it is gone or a zombie)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except psutil.Error:
        return None


def _alive(user: list[float]) -> bool:
    pid, started = int(user[0]), user[1]
    now = _started(pid)
    return now is not None and abs(now - started) < 1.0


@contextmanager
def _users(data_dir: Path) -> Iterator[list[list[float]]]:
    """The live users of the folder's server, under an exclusive lock; changes to the list are
    written back."""
    with open(data_dir / USERS_FILE, "a+", encoding="utf-8") as file:
        fcntl.flock(file, fcntl.LOCK_EX)  # released when the file closes
        users = [user for user in _read(file) if _alive(user)]
        yield users
        file.seek(0)
        file.truncate()
        json.dump(users, file)


def _read(file: IO[str]) -> list[list[float]]:
    file.seek(0)
    try:
        users = json.loads(file.read() or "[]")
    except ValueError:
        return []
    return [user for user in users if isinstance(user, list) and len(user) == 2]


def _stop(pgdata: Path, system_user: str | None) -> None:
    """Stop the server in ``pgdata`` and wait until it is gone (fast mode: sessions are cut)."""
    import subprocess

    pgserver = import_pgserver()
    if not (pgdata / "postmaster.pid").exists():
        return
    try:
        pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=system_user, timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        info = pgserver.utils.PostmasterInfo.read_from_pgdata(pgdata)  # not running, or stuck
        if info is not None and info.is_running():
            info.process.kill()
