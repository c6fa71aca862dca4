"""Second outside review: edge inputs over real HTTP and the embedded PostgreSQL's lifecycle.
Its findings (impossible moments in report periods answered 500, a request id echoed other than
sent, a command stopped while it started the embedded server or ran initdb) are fixed; these
tests keep them fixed, beside the attacks the service repelled."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from service.logging import configure_logging
from tests.support.tenants import Tenant, order_body

PROBLEM_JSON = "application/problem+json"
PERIOD = {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}


def _problem(answer: httpx.Response) -> dict:
    assert answer.status_code < 500, (answer.status_code, answer.text)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith(PROBLEM_JSON), answer.headers
    return answer.json()


# ----------------------------------------------------------------------------- findings


IMPOSSIBLE_MOMENTS = {
    "month 13": "2026-13-01T00:00:00Z",
    "February 30": "2026-02-30T00:00:00Z",
    "hour 25": "2026-01-01T25:00:00Z",
    "offset +24:00": "2026-01-01T00:00:00+24:00",
    "year 0": "0000-01-01T00:00:00Z",
    "Arabic-Indic digits": "\u0662\u0660\u0662\u0666-01-01T00:00:00Z",
    "full-width digits": "\uff12\uff10\uff12\uff16-01-01T00:00:00Z",
}


@pytest.mark.parametrize("moment", IMPOSSIBLE_MOMENTS.values(), ids=list(IMPOSSIBLE_MOMENTS))
@pytest.mark.parametrize("report", ["summary", "reasons"])
def test_an_impossible_moment_in_a_report_period_is_a_422(tenant: Tenant, report: str, moment: str) -> None:
    for name in ("from", "to"):
        answer = tenant.finance.get(f"/finance/v1/reports/{report}", params={**PERIOD, name: moment})
        problem = _problem(answer)
        assert [error["field"] for error in problem.get("errors", [])] == [name], problem


def test_a_request_id_is_echoed_byte_for_byte_or_replaced(tenant: Tenant) -> None:
    sent = b"trace-\xe9\xff"
    answer = tenant.storefront.get("/v1/cases", headers={"X-Request-ID": sent})
    assert answer.status_code == 200
    echoed = dict(answer.headers.raw)[b"x-request-id"]
    # either the caller's id as sent, or one of ours (not a third value the caller never sent)
    assert echoed == sent or echoed.isascii(), echoed


def test_a_repeated_period_bound_is_read_once_and_that_one_is_checked(tenant: Tenant) -> None:
    """The first value is the one checked and the one used (a bad first one is refused; a bad
    second one is never read)."""
    base = "/finance/v1/reports/summary?to=2026-02-01T00:00:00Z"
    read = tenant.finance.get(base + "&from=2026-01-01T00:00:00Z&from=2026-01-15T00:00:00Z")
    assert read.status_code == 200 and read.json()["from"] == "2026-01-01T00:00:00Z", read.text
    assert tenant.finance.get(base + "&from=2026-01-01T00:00:00Z&from=0.5").json()["from"] == "2026-01-01T00:00:00Z"
    _problem(tenant.finance.get(base + "&from=0.5&from=2026-01-01T00:00:00Z"))
    _problem(tenant.finance.get("/finance/v1/refunds?created_from=0.5&created_from=2026-01-01T00:00:00Z"))


# ----------------------------------------------------------------------------- repelled


def test_repeated_and_huge_page_parameters_are_4xx(tenant: Tenant) -> None:
    for query in ("limit=1&limit=2", "limit=99999999999999999999999", "limit=-0", "limit=1e2", "limit=%EF%BC%91",
                  "cursor=%25%25%25", "cursor=" + "A" * 20000, "cursor=bnVsbA", "cursor=WzFd", "cursor=e30"):
        answer = tenant.storefront.get(f"/v1/cases?{query}")
        assert answer.status_code in (200, 400, 422), (query, answer.status_code, answer.text)
        if answer.status_code != 200:
            _problem(answer)


@pytest.mark.parametrize("body", [
    b"\xef\xbb\xbf" + json.dumps(order_body()).encode(),  # a BOM
    json.dumps(order_body()).encode("utf-16"),
    json.dumps(order_body()).encode() + b" trailing",
    json.dumps(order_body()).encode() + b"\x00",
    b'{"lines": 1e999}',
    b'{"lines": ' + b"1" * 5000 + b"}",
    b'{"placed_at": "2026-01-01T00:00:00Z", "placed_at": 1}',
    b'{"lines": [' + b'"\\u005b",' * 100 + b"1]}",  # escaped brackets are text
], ids=["bom", "utf-16", "trailing garbage", "trailing NUL", "1e999", "5000 digits", "duplicate key", "escaped brackets"])
def test_odd_json_bodies_are_4xx(tenant: Tenant, body: bytes) -> None:
    answer = tenant.storefront.put("/v1/orders/o_odd", content=body, headers={"content-type": "application/json"})
    _problem(answer)
    assert tenant.storefront.get("/v1/orders/o_odd").status_code == 404


def test_a_duplicate_key_takes_the_last_value_like_every_json_reader(tenant: Tenant) -> None:
    body = json.dumps(order_body(currency="EUR"))[:-1] + ', "currency": "USD"}'
    answer = tenant.storefront.put("/v1/orders/o_dup", content=body, headers={"content-type": "application/json"})
    assert answer.status_code in (200, 201), answer.text
    assert answer.json()["currency"] == "USD"


@pytest.mark.parametrize("content_type", ["Application/JSON; charset=latin-1", "text/plain", "application/x-www-form-urlencoded"])
def test_odd_content_types_do_not_500(tenant: Tenant, content_type: str) -> None:
    body = json.dumps(order_body()).encode()
    answer = tenant.storefront.put("/v1/orders/o_ct", content=body, headers={"content-type": content_type})
    assert answer.status_code < 500, answer.text


@pytest.mark.parametrize("path", ["/v1/orders/a%2Fb", "/v1/orders/%2E%2E", "/v1/orders/..%2F..%2Fadmin",
                                  "/v1/orders/a%00b", "/v1/orders/" + "a" * 129, "/v1/orders/%C0%AE"])
def test_odd_path_ids_are_4xx(tenant: Tenant, path: str) -> None:
    answer = tenant.storefront.get(path)
    assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)


@pytest.mark.parametrize("document", [
    b"[rules.restocking_fee]\npercent = nan",
    b"[rules.restocking_fee]\npercent = inf",
    b"[rules.restocking_fee]\npercent = -0.0\n# " + b"[" * 1000,
    b'a = """\n\\"""' + b"[" * 100 + b'"""',
    b"a = '''" + b"[" * 100 + b"''''' \nb = 1",
], ids=["nan", "inf", "-0.0 and a comment", "escaped quote in a multi-line string", "five closing quotes"])
def test_odd_toml_policies_are_4xx_or_kept_exactly(tenant: Tenant, document: bytes) -> None:
    answer = tenant.admin.put("/admin/v1/policy", content=document, headers={"content-type": "application/toml"})
    assert answer.status_code < 500, answer.text


def test_a_request_id_with_a_crlf_or_a_json_breaker_stays_one_field(tenant: Tenant) -> None:
    buffer = io.StringIO()
    configure_logging("json", stream=buffer)
    try:
        answer = tenant.storefront.get("/v1/cases", headers={"X-Request-ID": 'x", "status": 999, "y": "'})
    finally:
        configure_logging("json")
    assert answer.status_code == 200
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    request = [line for line in lines if line.get("event") == "request"]
    assert [line["status"] for line in request] == [200]
    with pytest.raises(httpx.LocalProtocolError):
        tenant.storefront.get("/v1/cases", headers={"X-Request-ID": "a\r\nSet-Cookie: x=1"})


# ----------------------------------------------------------------------------- embedded PostgreSQL


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RETURNS_", "STRIPE_", "XDG_RUNTIME_DIR"))}
    env["RETURNS_DATA_DIR"] = str(data_dir)
    return env


def _migrate_stopped_when(data_dir: Path, sign: str) -> subprocess.Popen[bytes]:
    """``returns migrate`` on a new data folder, sent SIGTERM as soon as ``pg/<sign>`` appears."""
    process = subprocess.Popen([sys.executable, "-m", "service.cli", "migrate"], env=_env(data_dir),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while not (data_dir / "pg" / sign).exists():
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        assert time.monotonic() < deadline, f"pg/{sign} never appeared"
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    return process


def test_a_command_stopped_while_it_starts_the_embedded_server_leaves_no_postgres(tmp_path: Path) -> None:
    from adapters.postgres.embedded import embedded_postgres, postgres_processes

    try:
        process = _migrate_stopped_when(tmp_path, "log")  # pg_ctl -l log: made when the server starts
        assert process.returncode == 143
        time.sleep(2)
        left = postgres_processes(tmp_path)
    finally:
        with embedded_postgres(tmp_path):  # joins the leftover server and stops it as its last user
            pass
    assert postgres_processes(tmp_path) == []
    assert left == [], "postgres left running after the command ended"


def test_a_first_command_stopped_during_initdb_does_not_break_the_data_folder(tmp_path: Path) -> None:
    from adapters.postgres.embedded import embedded_postgres, postgres_processes

    try:
        process = _migrate_stopped_when(tmp_path, "postmaster.pid")  # initdb's bootstrap backend writes one
        assert process.returncode == 143, "the signal still ends the command, once the start is over"
        again = subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=_env(tmp_path),
                               capture_output=True, text=True, timeout=120)
    finally:
        if postgres_processes(tmp_path):
            with embedded_postgres(tmp_path):
                pass
    assert postgres_processes(tmp_path) == []
    assert again.returncode == 0, again.stderr[-2000:]
