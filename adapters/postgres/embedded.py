"""An embedded PostgreSQL (the ``pgserver`` package) for a laptop with no database configured.
Its data lives in a folder and survives restarts; every CLI command started on the same folder
shares the one server."""

from __future__ import annotations

import logging
from pathlib import Path


def embedded_database_url(data_dir: Path) -> str:
    import pgserver  # imported late: only the embedded mode needs it

    logging.getLogger("pgserver").setLevel(logging.WARNING)  # its INFO lines would drown the service's
    pg_dir = (data_dir / "pg").resolve()
    pg_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pg_dir, cleanup_mode="stop")
    # Keep a reference for the life of the process: the server stops when it is collected.
    _servers.append(server)
    return server.get_uri()


_servers: list[object] = []
