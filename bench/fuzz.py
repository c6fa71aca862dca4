"""A longer schemathesis run than the suite's: every operation of the committed OpenAPI document
against `returns serve` on a fresh database, with an admin key, many examples per operation.

    python bench/fuzz.py [--examples 200]

Prints schemathesis' own report; exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load import _admin  # noqa: E402
from tests.support.database import _with_database  # noqa: E402

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--database", default=os.environ.get("RETURNS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    name = f"returns_fuzz_{secrets.token_hex(4)}"
    asyncio.run(_admin(args.database, f'CREATE DATABASE "{name}"'))
    env = {**os.environ, "RETURNS_DATABASE_URL": _with_database(args.database, name), "RETURNS_LOG_FORMAT": "json",
           "STRIPE_WEBHOOK_SECRET": "whsec_fuzz"}
    port = 20_000 + secrets.randbelow(1000)
    server = None
    try:
        subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=env, check=True, cwd=ROOT, capture_output=True)
        key = subprocess.run(
            [sys.executable, "-m", "service.cli", "keys", "create", "--merchant", "m_fuzz", "--role", "admin"],
            env=env, check=True, cwd=ROOT, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]
        server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(base + "/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        done = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", str(ROOT / "openapi" / "openapi.json"), "--url", base,
             "-H", f"Authorization: Bearer {key}", "--checks", CHECKS, "--max-examples", str(args.examples)],
            cwd=ROOT,
        )
        sys.exit(done.returncode)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        asyncio.run(_admin(args.database, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
