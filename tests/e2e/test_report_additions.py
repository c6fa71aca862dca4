"""What the Reports page added to the report endpoints, against the real service and its
simulated gateway: the reasons report per day, and agent keys let in by an operator setting (to
the reports, their own merchant's cases only, and to nothing else of finance's)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.config import Settings
from tests.support.database import fresh_database
from tests.support.flows import OTHER_L1
from tests.support.reports import RETURNS, period, seed
from tests.support.server import serve
from tests.support.tenants import Tenant

MERCHANT = {"defective", "damaged_in_transit", "wrong_item", "not_as_described", "arrived_late", "missing_parts"}


def _day(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%d")


def test_reasons_per_day_add_up_to_the_period(tenant: Tenant) -> None:
    seed(tenant)
    report = tenant.finance.get("/finance/v1/reports/reasons", params={**period(), "by_day": "true"}).json()
    without = tenant.finance.get("/finance/v1/reports/reasons", params=period()).json()
    assert without["by_day"] is None and without == {**report, "by_day": None}  # only when asked: it costs scans

    expected: dict[str, Counter] = {}
    for days_ago, _, items, _ in RETURNS:
        for line, quantity, reason in items:
            expected.setdefault(_day(days_ago), Counter())[(line, reason)] += quantity
    assert [d["day"] for d in report["by_day"]] == sorted(expected)
    for day in report["by_day"]:
        assert day["items"] == sum(expected[day["day"]].values())
        merchant = sum(q for (_, reason), q in expected[day["day"]].items() if reason in MERCHANT)
        assert day["merchant_responsible_share"] == round(merchant / day["items"], 4)
        for r in day["reasons"]:
            assert r["responsibility"] == ("merchant" if r["reason"] in MERCHANT else "customer")
    assert sum(d["items"] for d in report["by_day"]) == report["items"]
    per_sku = Counter()
    for day in report["by_day"]:
        for row in day["reasons"]:
            per_sku[row["sku"]] += row["items"]
    assert per_sku == {row["sku"]: row["items"] for row in report["by_sku"]}

    ratings = {_day(d): r for d, _, _, r in RETURNS if r is not None}
    for day in report["by_day"]:
        rating = ratings.get(day["day"])
        assert day["csat"] == (
            {"surveys": 1, "average_rating": float(rating), "satisfied_share": 1.0 if rating >= 4 else 0.0}
            if rating is not None
            else {"surveys": 0, "average_rating": None, "satisfied_share": None}
        )
    assert report["csat"]["surveys"] == len(ratings)


def test_a_period_without_cases_has_no_days(tenant: Tenant) -> None:
    report = tenant.finance.get("/finance/v1/reports/reasons", params={**period(), "by_day": "true"}).json()
    assert report["by_day"] == [] and report["items"] == 0


@pytest.fixture(scope="module")
def agents_may_read_reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A service of its own whose operator lets agent keys read the reports."""
    from service.bootstrap import build_app

    with fresh_database() as database_url:
        data: Path = tmp_path_factory.mktemp("agents")
        settings = Settings(database_url=database_url, data_dir=data, log_format="json", reports_for_agents=True)
        with serve(build_app(settings)) as url:
            yield url, database_url


def test_agent_keys_read_reports_only_where_the_operator_says_so(
    tenant: Tenant, agents_may_read_reports: tuple[str, str]
) -> None:
    reports = ("/finance/v1/reports/summary", "/finance/v1/reports/reasons")
    for path in reports:
        refused = tenant.agent.get(path, params=period())
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert Settings.from_env({"RETURNS_REPORTS_FOR_AGENTS": "1"}).reports_for_agents
    assert not Settings.from_env({}).reports_for_agents
    opened = Tenant(*agents_may_read_reports)
    try:
        for path in reports:
            assert opened.agent.get(path, params=period()).status_code == 200
            assert opened.storefront.get(path, params=period()).status_code == 403
        # the setting opens the reports, nothing else of finance's
        assert opened.agent.get("/finance/v1/refunds").status_code == 403
        assert opened.agent.post("/finance/v1/reconciliations", json=period()).status_code == 403
    finally:
        opened.close()


def test_an_agent_key_reads_no_finance_endpoint_but_the_reports_where_reports_are_opened(
    agents_may_read_reports: tuple[str, str],
) -> None:
    """With RETURNS_REPORTS_FOR_AGENTS=1 an agent key reads both reports (``by_day`` included,
    its own merchant's cases only) and nothing else of finance's.

    Origin: outside review round 4, an attack the service withstood."""
    ours, theirs = Tenant(*agents_may_read_reports), Tenant(*agents_may_read_reports)
    try:
        theirs.open_case(theirs.put_order()["order_id"], items=OTHER_L1)
        ours.open_case(ours.put_order()["order_id"])
        report = ours.agent.get("/finance/v1/reports/reasons", params={**period(), "by_day": "true"}).json()
        assert report["items"] == 1 and [r["reason"] for d in report["by_day"] for r in d["reasons"]] == ["changed_mind"]
        assert ours.agent.get("/finance/v1/reports/summary", params={**period(), "group_by": "sku"}).status_code == 200
        for method, path in (
            ("GET", "/finance/v1/refunds"),
            ("GET", "/finance/v1/refunds.csv"),
            ("GET", "/finance/v1/reconciliations/rec_1"),
            ("POST", "/finance/v1/reconciliations"),
        ):
            answer = ours.agent.request(method, path, json=period() if method == "POST" else None)
            assert answer.status_code == 403, (path, answer.text)
    finally:
        ours.close()
        theirs.close()
