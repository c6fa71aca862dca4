"""``returns``: serve the API, apply migrations, make API keys."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import msgspec

from service.config import LOCAL_URL, Settings, http_server_options
from service.keys import ROLES, create_api_key, revoke_api_key


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    from service.bootstrap import build_app

    if settings.database_url is None:
        print(f"No RETURNS_DATABASE_URL: using the embedded PostgreSQL in {settings.data_dir}/pg", file=sys.stderr)
    print(f"Serving on http://{args.host}:{args.port}  (OpenAPI: /schema/openapi.json)", file=sys.stderr)
    if settings.public_url is None:  # customers' links go where this service listens
        url = listening_url(args.host, args.port)
        print(f"No RETURNS_PUBLIC_URL: customers' links point at {url}", file=sys.stderr)
        os.environ["RETURNS_PUBLIC_URL"] = url  # for --workers, which read the environment
        settings = msgspec.structs.replace(settings, public_url=url)
    if args.workers > 1:  # separate processes, each building the app from the environment
        if settings.database_url is None:
            # This supervising process holds the embedded server too: it outlives its workers,
            # so the server stops only once every worker has ended, however it ended.
            from service.bootstrap import database_url

            database_url(settings)
        uvicorn.run(
            "service.bootstrap:build_app",
            factory=True,
            workers=args.workers,
            host=args.host,
            port=args.port,
            log_level="warning",
            access_log=False,
            **http_server_options(settings.trusted_proxies),
        )
        return
    uvicorn.run(
        build_app(settings),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        **http_server_options(settings.trusted_proxies),
    )


def listening_url(host: str, port: int) -> str:
    """The URL of ``host``:``port``; a wildcard address (every interface) is reached on loopback."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _migrate(settings: Settings) -> None:
    from adapters.postgres.migrations import migrate
    from service.bootstrap import open_database

    db = await open_database(settings)
    async with db.pool.acquire() as conn:
        applied = await migrate(conn)
    await db.close()
    print("schema up to date" + (f"; applied {', '.join(applied)}" if applied else ""))


async def _create_key(settings: Settings, merchant: str, role: str) -> None:
    from service.bootstrap import open_database

    db = await open_database(settings)
    try:
        key_id, key = await create_api_key(db, merchant, role)
    finally:
        await db.close()
    print(f"created {role} key {key_id} for merchant {merchant}; it is shown only once:")
    print(key)


async def _worker(settings: Settings) -> None:
    """The refund worker on its own, until SIGTERM or SIGINT; a round in progress is finished."""
    from service.bootstrap import open_services

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with open_services(settings) as services:
        print("worker running; SIGTERM stops it after the current round", file=sys.stderr)
        if settings.public_url is None:
            print(f"No RETURNS_PUBLIC_URL: customers' e-mail links point at {LOCAL_URL}", file=sys.stderr)
        await services.worker.run(stop)


async def _revoke_key(settings: Settings, merchant: str, key_id: str) -> None:
    from datetime import UTC, datetime

    from service.bootstrap import open_database

    db = await open_database(settings)
    try:
        revoked = await revoke_api_key(db, merchant, key_id, datetime.now(UTC))
    finally:
        await db.close()
    if not revoked:
        sys.exit(f"no active key {key_id} for merchant {merchant}")
    print(f"revoked key {key_id} of merchant {merchant}")


async def _gateway_account(settings: Settings, merchant: str, account: str | None) -> None:
    from domain.errors import GatewayAccountTaken
    from service.bootstrap import open_services

    async with open_services(settings) as services:
        try:
            await services.refunds.bind_account(merchant, account)
        except GatewayAccountTaken as taken:
            sys.exit(str(taken))
    print(f"merchant {merchant} refunds on {account}" if account else f"merchant {merchant} has no gateway account")


def _openapi(output: str) -> None:
    """Write the OpenAPI document the app serves, so the committed copy can be refreshed."""
    import json

    from service.bootstrap import build_app

    document = build_app(Settings.from_env()).openapi_schema.to_schema()
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if output == "-":
        sys.stdout.write(text)
    else:
        with open(output, "w", encoding="utf-8") as file:
            file.write(text)


def _account_id(text: str) -> str:
    """The same rule as the admin endpoint's: ``acct_`` and letters or digits."""
    from service.dto import GatewayAccountIn

    try:
        return msgspec.convert({"account": text}, GatewayAccountIn).account or ""
    except msgspec.ValidationError as exc:
        raise argparse.ArgumentTypeError(f"not a gateway account id: {exc}") from exc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="returns", description="Returns & refunds service")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP API (and the refund worker unless RETURNS_RUN_WORKER=0)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="API processes (each runs a refund worker too)")
    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser("worker", help="run the refund worker on its own")
    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="make an API key (prints it alone on the last line)")
    create.add_argument("--merchant", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    revoke = keys.add_parser("revoke", help="revoke an API key by its id (key_…)")
    revoke.add_argument("--merchant", required=True)
    revoke.add_argument("--key-id", required=True)
    accounts = commands.add_parser("gateway-account", help="bind a merchant to its gateway account (one merchant each)")
    account_commands = accounts.add_subparsers(dest="account_command", required=True)
    bind = account_commands.add_parser("set", help="refunds of the merchant are made on this account (acct_…)")
    bind.add_argument("--merchant", required=True)
    bind.add_argument("--account", required=True, type=_account_id)
    unbind = account_commands.add_parser("clear", help="the merchant has no gateway account of its own")
    unbind.add_argument("--merchant", required=True)
    openapi = commands.add_parser("openapi", help="write the OpenAPI document (openapi/openapi.json)")
    openapi.add_argument("--output", default="openapi/openapi.json", help="a file, or - for stdout")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    # SIGTERM ends a command like Ctrl-C does, through ``finally``: the embedded PostgreSQL is
    # released below (uvicorn and the worker handle the signal themselves, then come back here).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        _run(args, settings)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        from adapters.postgres.embedded import release_embedded

        release_embedded()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)


def _run(args: argparse.Namespace, settings: Settings) -> None:
    if args.command == "serve":
        _serve(args, settings)
    elif args.command == "worker":
        asyncio.run(_worker(settings))
    elif args.command == "migrate":
        asyncio.run(_migrate(settings))
    elif args.command == "keys" and args.keys_command == "create":
        asyncio.run(_create_key(settings, args.merchant, args.role))
    elif args.command == "keys":
        asyncio.run(_revoke_key(settings, args.merchant, args.key_id))
    elif args.command == "gateway-account":
        asyncio.run(_gateway_account(settings, args.merchant, args.account if args.account_command == "set" else None))
    elif args.command == "openapi":
        _openapi(args.output)


if __name__ == "__main__":
    main()
