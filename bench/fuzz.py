"""A longer schemathesis run than the suite's: the committed OpenAPI document against
`returns serve` on a fresh database, once per role (storefront, agent, finance, admin), every
phase (examples, coverage, fuzzing, stateful through the document's links), every check.

    python bench/fuzz.py [--examples 50] [--roles storefront,agent,finance,admin] [--checks all]

The merchant has orders and cases of every kind first, so the stateful phase reaches real ids.
Prints, per role, the test cases run, the failures per check, and schemathesis' warnings (such
as operations that only ever answered 404). Exits non-zero on any failure. Schemathesis' reports (JSON, JUnit) are kept under ``--reports``.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.support import DATABASE, cases_of_every_kind, create_key, fresh_database, wait_ready  # noqa: E402

ROLES = ("storefront", "agent", "finance", "admin")


def run_role(base: str, key: str, role: str, args: argparse.Namespace) -> dict:
    folder = Path(args.reports) / role
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            str(ROOT / "openapi" / "openapi.json"),
            "--url",
            base,
            "-H",
            f"Authorization: Bearer {key}",
            "--checks",
            args.checks,
            "--max-examples",
            str(args.examples),
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--report",
            "ndjson,junit",
            "--report-dir",
            str(folder),
            "--no-color",
        ],
        cwd=ROOT,
        stdout=(folder / "output.txt").open("w"),
        stderr=subprocess.STDOUT,
    )
    return {"seconds": time.perf_counter() - started, **summarise(folder)}


def summarise(folder: Path) -> dict:
    """Cases generated, failures per check and the warnings, from schemathesis' own summary."""
    text = (folder / "output.txt").read_text()
    generated = re.search(r"(\d+) generated", text)
    failures = {name.strip(): int(count) for name, count in re.findall(r"❌ (ST\d+ [^:\n]+): (\d+)", text)}
    warnings = [line.strip("⚠️ ").strip() for line in text.splitlines() if line.strip().startswith("⚠️")]
    return {"cases": int(generated.group(1)) if generated else 0, "failures": failures, "warnings": warnings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50)
    parser.add_argument("--roles", default=",".join(ROLES))
    parser.add_argument("--checks", default="all")
    parser.add_argument("--reports", default=str(ROOT / ".schemathesis" / "fuzz"))
    parser.add_argument("--database", default=DATABASE)
    args = parser.parse_args()
    results = {}
    with fresh_database(args.database, "returns_fuzz") as database_url:
        env = {
            **os.environ,
            "RETURNS_DATABASE_URL": database_url,
            "RETURNS_LOG_FORMAT": "json",
            "STRIPE_WEBHOOK_SECRET": "whsec_fuzz",
        }
        port = 20_000 + secrets.randbelow(1000)
        subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=env, check=True, cwd=ROOT, capture_output=True)
        keys = {role: create_key(env, "m_fuzz", role) for role in ROLES}
        server = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base)
            cases_of_every_kind(base, keys)
            for role in args.roles.split(","):
                results[role] = run_role(base, keys[role], role, args)
                figures = results[role]
                failed = ", ".join(f"{check} {count}" for check, count in sorted(figures["failures"].items())) or "none"
                print(f"{role:>10}: {figures['cases']:>6} cases in {figures['seconds']:.0f} s; failures: {failed}", flush=True)
                for warning in figures["warnings"]:
                    print(f"{'':>12}{warning}")
        finally:
            server.terminate()
            server.wait(timeout=30)
    total = sum(sum(r["failures"].values()) for r in results.values())
    print(f"fuzz: {sum(r['cases'] for r in results.values())} cases, {total} failures")
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
