"""The EasyPost adapter through the real ``easypost`` SDK against the fake EasyPost server on
127.0.0.1: rates in exact minor units, a label bought once whatever happens to the answers, real
label files, void, tracking, error mapping; and the webhook's signature checked as EasyPost signs
it (the fake's signer agrees with the SDK's own ``validate_webhook``)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import easypost
import pytest
from PIL import Image

from adapters.carriers.easypost import EasyPostCarrier, EasyPostWebhook, minor_units
from service.ports import (
    CarrierError,
    CarrierShipment,
    InvalidWebhook,
    Parcel,
    ShippingAddress,
)
from tests.fakes.easypost_server import FakeEasyPost, signature, signed

SECRET = "whsec-easypost-test"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CUSTOMER = ShippingAddress(name="Ana Buyer", street1="1 Main St", city="Springfield", zip="62701", country="US", state="IL")
WAREHOUSE = ShippingAddress(
    name="Returns Dept", street1="9 Dock Rd", city="Reno", zip="89501", country="US", state="NV", phone="+17755550100"
)


@pytest.fixture
def fake() -> Iterator[FakeEasyPost]:
    with FakeEasyPost() as server:
        yield server


@pytest.fixture
async def carrier(fake: FakeEasyPost) -> AsyncIterator[EasyPostCarrier]:
    easypost_carrier = EasyPostCarrier("EZTK_test", api_base=fake.api_base)
    yield easypost_carrier
    await easypost_carrier.close()


async def _shipment(carrier: EasyPostCarrier, reference: str = "lbl_1") -> CarrierShipment:
    return await carrier.create_shipment(
        from_address=CUSTOMER, to_address=WAREHOUSE, parcel=Parcel(weight_g=1000, length_mm=300), reference=reference
    )


def _cheapest(shipment: CarrierShipment) -> str:
    return min(shipment.rates, key=lambda rate: rate.amount).rate_id


# --------------------------------------------------------------------------- shipments and money


async def test_a_shipment_keeps_our_reference_and_its_rates_come_in_minor_units(
    fake: FakeEasyPost, carrier: EasyPostCarrier
) -> None:
    shipment = await _shipment(carrier, "lbl_ref42")
    stored = fake.shipments[shipment.shipment_id]
    assert stored["reference"] == "lbl_ref42"
    assert stored["from_address"]["street1"] == "1 Main St" and stored["to_address"]["phone"] == "+17755550100"
    # 1000 g = 35.27 oz, 300 mm = 11.81 in: rounded up to a tenth, never declared smaller
    assert stored["parcel"]["weight"] == 35.3 and stored["parcel"]["length"] == 11.9
    assert [(r.carrier, r.service, r.amount, r.currency, r.delivery_days) for r in shipment.rates] == [
        ("USPS", "Priority", 729, "USD", 2),
        ("UPS", "Ground", 1110, "USD", 5),
    ]
    assert shipment.label is None
    assert await carrier.get_shipment(shipment.shipment_id) == shipment


@pytest.mark.parametrize(
    ("rate", "currency", "minor"),
    [
        ("7.29", "USD", 729),
        ("4.35", "USD", 435),
        ("7.2900", "USD", 729),
        ("0.10", "EUR", 10),
        ("800", "JPY", 800),
        ("800.00", "JPY", 800),
        ("1.234", "KWD", 1234),
        ("19.99", "usd", 1999),
    ],
)
async def test_rates_convert_exactly_with_the_currencys_exponent(rate: str, currency: str, minor: int) -> None:
    with FakeEasyPost([("USPS", "Priority", rate, currency, None)]) as fake:
        carrier = EasyPostCarrier("EZTK_test", api_base=fake.api_base)
        [converted] = (await _shipment(carrier)).rates
        await carrier.close()
    assert (converted.amount, converted.currency) == (minor, currency.upper())
    # floats would not get there: 4.35 * 100 is 434.99999999999994
    assert int(float("4.35") * 100) == 434 and minor_units("4.35", "USD") == 435


async def test_a_rate_that_is_not_whole_minor_units_is_left_out_never_rounded() -> None:
    rates = [
        ("USPS", "Priority", "7.295", "USD", 2),
        ("USPS", "Express", "800.5", "JPY", 1),
        ("UPS", "Ground", "not money", "USD", 3),
        ("UPS", "Air", "12.00", "USD", 1),
    ]
    with FakeEasyPost(rates) as fake:
        carrier = EasyPostCarrier("EZTK_test", api_base=fake.api_base)
        shipment = await _shipment(carrier)
        await carrier.close()
    assert [(r.service, r.amount) for r in shipment.rates] == [("Air", 1200)]


# --------------------------------------------------------------------------- buying once


async def test_buy_answers_the_label_with_real_pdf_and_png_and_the_qr_code(fake: FakeEasyPost, carrier: EasyPostCarrier) -> None:
    shipment = await _shipment(carrier)
    usps = next(rate for rate in shipment.rates if rate.carrier == "USPS")
    label = await carrier.buy(shipment.shipment_id, usps.rate_id)
    stored = fake.shipments[shipment.shipment_id]
    assert (label.shipment_id, label.tracking_code, label.carrier, label.service) == (
        shipment.shipment_id,
        stored["tracking_code"],
        "USPS",
        "Priority",
    )
    assert (label.amount, label.currency) == (729, "USD")
    assert label.tracker_id == stored["tracker"]["id"]
    assert label.pdf.startswith(b"%PDF-") and label.pdf.rstrip().endswith(b"%%EOF")
    assert Image.open(io.BytesIO(label.png)).format == "PNG"
    assert label.qr_png is not None and Image.open(io.BytesIO(label.qr_png)).format == "PNG"
    assert fake.purchases == [(shipment.shipment_id, usps.rate_id)]
    # the PDF came from EasyPost's label conversion, asked for once
    assert fake.requests.count(("GET", f"/v2/shipments/{shipment.shipment_id}/label")) == 1


async def test_no_qr_code_where_the_carrier_offers_none(fake: FakeEasyPost, carrier: EasyPostCarrier) -> None:
    shipment = await _shipment(carrier)
    ups = next(rate for rate in shipment.rates if rate.carrier == "UPS")
    label = await carrier.buy(shipment.shipment_id, ups.rate_id)
    assert label.qr_png is None and (label.carrier, label.amount) == ("UPS", 1110)
    assert not any(path.endswith("/forms") for _, path in fake.requests)  # not even asked


async def test_buying_twice_buys_once_and_answers_the_same_label(fake: FakeEasyPost, carrier: EasyPostCarrier) -> None:
    shipment = await _shipment(carrier)
    first = await carrier.buy(shipment.shipment_id, _cheapest(shipment))
    again = await carrier.buy(shipment.shipment_id, _cheapest(shipment))
    other_rate = await carrier.buy(shipment.shipment_id, shipment.rates[1].rate_id)
    assert first == again == other_rate
    assert len(fake.purchases) == 1
    # the fake refused the later buys as EasyPost does; the adapter read the shipment instead
    assert fake.requests.count(("POST", f"/v2/shipments/{shipment.shipment_id}/buy")) == 3


async def test_twenty_concurrent_buys_of_one_shipment_buy_one_label(fake: FakeEasyPost, carrier: EasyPostCarrier) -> None:
    shipment = await _shipment(carrier)
    labels = await asyncio.gather(*(carrier.buy(shipment.shipment_id, _cheapest(shipment)) for _ in range(20)))
    assert len({label.tracking_code for label in labels}) == 1
    assert len(fake.purchases) == 1


async def test_a_buy_whose_answer_is_lost_is_retryable_and_the_retry_buys_nothing_more(
    fake: FakeEasyPost, carrier: EasyPostCarrier
) -> None:
    shipment = await _shipment(carrier)
    fake.drop_connection_next(after_commit=True)  # EasyPost bought it; the answer never came
    with pytest.raises(CarrierError) as lost:
        await carrier.buy(shipment.shipment_id, _cheapest(shipment))
    assert lost.value.retryable
    assert len(fake.purchases) == 1
    # a worker that crashed there asks the shipment first ...
    seen = await carrier.get_shipment(shipment.shipment_id)
    assert seen.label is not None and seen.label.tracking_code == fake.shipments[shipment.shipment_id]["tracking_code"]
    # ... or simply buys again
    label = await carrier.buy(shipment.shipment_id, _cheapest(shipment))
    assert label == seen.label
    assert len(fake.purchases) == 1


async def test_a_buy_that_timed_out_is_retryable(fake: FakeEasyPost, carrier: EasyPostCarrier) -> None:
    shipment = await _shipment(carrier)
    impatient = EasyPostCarrier("EZTK_test", api_base=fake.api_base, timeout=1)
    fake.delay_next(1.5)  # longer than its 1 s timeout; the buy goes through meanwhile
    with pytest.raises(CarrierError) as slow:
        await impatient.buy(shipment.shipment_id, _cheapest(shipment))
    await impatient.close()
    assert slow.value.retryable
    await asyncio.sleep(0.6)
    await carrier.buy(shipment.shipment_id, _cheapest(shipment))
    assert len(fake.purchases) == 1


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_server_errors_and_rate_limits_are_retryable_and_buy_nothing(
    fake: FakeEasyPost, carrier: EasyPostCarrier, status: int
) -> None:
    shipment = await _shipment(carrier)
    fake.fail_next(status=status)
    with pytest.raises(CarrierError) as failed:
        await carrier.buy(shipment.shipment_id, _cheapest(shipment))
    assert failed.value.retryable and fake.purchases == []


async def test_a_buy_answered_only_after_the_client_gave_up_is_bought_once(fake: FakeEasyPost, carrier: EasyPostCarrier) -> None:
    fake.delay_next(1.5, after_commit=True, on="/buy")  # aimed at the buy: the shipment is made at once
    shipment = await _shipment(carrier)
    impatient = EasyPostCarrier("EZTK_test", api_base=fake.api_base, timeout=1)
    with pytest.raises(CarrierError) as slow:
        await impatient.buy(shipment.shipment_id, _cheapest(shipment))
    await impatient.close()
    assert slow.value.retryable and len(fake.purchases) == 1  # bought before the answer was held back
    assert (await carrier.get_shipment(shipment.shipment_id)).label is not None
    await carrier.buy(shipment.shipment_id, _cheapest(shipment))
    assert len(fake.purchases) == 1


async def test_refusals_are_not_retryable(fake: FakeEasyPost, carrier: EasyPostCarrier) -> None:
    shipment = await _shipment(carrier)
    with pytest.raises(CarrierError) as unknown_rate:
        await carrier.buy(shipment.shipment_id, "rate_not_ours")
    assert not unknown_rate.value.retryable and unknown_rate.value.code == "SHIPMENT.RATE.INVALID"
    with pytest.raises(CarrierError) as missing:
        await carrier.get_shipment("shp_missing")
    assert not missing.value.retryable and missing.value.code == "NOT_FOUND"
    with pytest.raises(CarrierError) as bad_parcel:
        await carrier.create_shipment(from_address=CUSTOMER, to_address=WAREHOUSE, parcel=Parcel(weight_g=0), reference="lbl_2")
    assert not bad_parcel.value.retryable
    assert fake.purchases == []


async def test_no_server_at_all_is_retryable(fake: FakeEasyPost) -> None:
    base = fake.api_base
    fake.stop()
    nowhere = EasyPostCarrier("EZTK_test", api_base=base, timeout=1)
    with pytest.raises(CarrierError) as unreachable:
        await nowhere.get_shipment("shp_1")
    await nowhere.close()
    assert unreachable.value.retryable


async def test_label_files_only_over_https_or_from_the_apis_own_host(fake: FakeEasyPost) -> None:
    carrier = EasyPostCarrier("EZTK_test", api_base=fake.api_base)
    assert carrier._may_fetch(f"{fake.url}/files/shp_1.png")
    assert carrier._may_fetch("https://easypost-files.s3.us-west-2.amazonaws.com/files/postage_label/x.png")
    assert not carrier._may_fetch("http://169.254.169.254/latest/meta-data")
    assert not carrier._may_fetch("file:///etc/passwd")
    await carrier.close()


# --------------------------------------------------------------------------- void and tracking


async def test_void_refunds_an_unused_label_and_refuses_once_it_travels(fake: FakeEasyPost, carrier: EasyPostCarrier) -> None:
    unused = await _shipment(carrier, "lbl_a")
    await carrier.buy(unused.shipment_id, _cheapest(unused))
    assert await carrier.void(unused.shipment_id) is True
    assert await carrier.void(unused.shipment_id) is True  # asked again: still submitted, not a second refund
    assert fake.refunds == [unused.shipment_id]

    travelling = await _shipment(carrier, "lbl_b")
    label = await carrier.buy(travelling.shipment_id, _cheapest(travelling))
    fake.scan(label.tracking_code, "in_transit")
    assert await carrier.void(travelling.shipment_id) is False
    assert fake.refunds == [unused.shipment_id]


async def test_track_reads_every_scan_in_the_ports_statuses(fake: FakeEasyPost, carrier: EasyPostCarrier) -> None:
    shipment = await _shipment(carrier)
    label = await carrier.buy(shipment.shipment_id, _cheapest(shipment))
    fake.scan(label.tracking_code, "in_transit", at=NOW, message="Accepted at USPS origin facility")
    fake.scan(label.tracking_code, "available_for_pickup", at=NOW + timedelta(days=1))
    fake.scan(label.tracking_code, "delivered", at=NOW + timedelta(days=2))
    events = await carrier.track(label.tracking_code, "USPS")
    assert [e.status for e in events] == ["pre_transit", "in_transit", "out_for_delivery", "delivered"]
    assert events[1].at == NOW and events[1].detail == "Accepted at USPS origin facility"
    assert {e.tracking_code for e in events} == {label.tracking_code}
    assert len({e.event_id for e in events}) == 4
    assert all(e.event_id.startswith(label.tracker_id or "-") for e in events)
    assert await carrier.track(label.tracking_code, "USPS") == events  # the same ids when read again
    assert len(fake.trackers) == 1  # the label's own tracker, no new one


async def test_track_makes_a_tracker_for_a_code_easypost_does_not_track_yet(fake: FakeEasyPost, carrier: EasyPostCarrier) -> None:
    assert await carrier.track("9400100000000000000000", "USPS") == []
    assert len(fake.trackers) == 1 and ("POST", "/v2/trackers") in fake.requests


# --------------------------------------------------------------------------- webhooks


def _event(fake: FakeEasyPost, status: str = "in_transit", code: str = "EZ1") -> dict:
    return fake.scan(code, status, at=NOW)


def test_a_signed_event_gives_its_trackers_scans(fake: FakeEasyPost) -> None:
    fake.scan("EZ1", "pre_transit", at=NOW - timedelta(hours=2))
    payload, headers = signed(_event(fake), SECRET)
    events = EasyPostWebhook([SECRET]).verify(payload, headers, NOW)
    assert [(e.status, e.at, e.tracking_code) for e in events] == [
        ("pre_transit", NOW - timedelta(hours=2), "EZ1"),
        ("in_transit", NOW, "EZ1"),
    ]
    # EasyPost's own SDK accepts what the fake signs
    assert easypost.util.validate_webhook(payload, headers, SECRET)["description"] == "tracker.updated"


def test_header_names_are_read_in_any_case_and_a_rotated_secret_still_verifies(fake: FakeEasyPost) -> None:
    payload, headers = signed(_event(fake), "old-secret")
    lower = {name.lower(): value for name, value in headers.items()}
    assert EasyPostWebhook(["new-secret", "old-secret"]).verify(payload, lower, NOW)
    with pytest.raises(InvalidWebhook):
        EasyPostWebhook(["new-secret"]).verify(payload, lower, NOW)


def test_a_non_ascii_secret_is_normalised_as_the_sdk_does(fake: FakeEasyPost) -> None:
    secret = "ｓｅｃｒｅｔ-ﬁ"  # full-width letters and a ligature: NFKD makes them "secret-fi"
    payload, headers = signed(_event(fake), secret)
    assert EasyPostWebhook([secret]).verify(payload, headers, NOW)
    assert easypost.util.validate_webhook(payload, headers, secret)
    assert EasyPostWebhook(["secret-fi"]).verify(payload, headers, NOW)


def _altered(text: str) -> str:
    """``text`` with its last character changed (to ``0``, or to ``1`` where it was ``0``: a
    signature that ended in ``0`` once went through unchanged, one run in sixteen)."""
    return text[:-1] + ("1" if text.endswith("0") else "0")


@pytest.mark.parametrize(
    "tamper",
    [
        "altered body",
        "altered signature",
        "missing header",
        "empty header",
        "other secret",
        "bare hex",
        "signature of another body",
    ],
)
def test_anything_not_signed_by_easypost_is_refused(fake: FakeEasyPost, tamper: str) -> None:
    payload, headers = signed(_event(fake), SECRET)
    other_payload, other_headers = signed(_event(fake, "delivered"), SECRET)
    digest = headers["X-Hmac-Signature"].removeprefix("hmac-sha256-hex=")
    cases = {
        "altered body": (payload.replace(b"in_transit", b"delivered"), headers),
        "altered signature": (payload, {"X-Hmac-Signature": _altered(headers["X-Hmac-Signature"])}),
        "missing header": (payload, {"Content-Type": "application/json"}),
        "empty header": (payload, {"X-Hmac-Signature": ""}),
        "other secret": (payload, {"X-Hmac-Signature": signature(payload, "guess")}),
        "bare hex": (payload, {"X-Hmac-Signature": digest}),
        "signature of another body": (payload, other_headers),
    }
    body, sent = cases[tamper]
    with pytest.raises(InvalidWebhook) as refused:
        EasyPostWebhook([SECRET]).verify(body, sent, NOW)
    assert refused.value.code == "invalid_signature"
    # and the SDK agrees
    with pytest.raises(easypost.errors.SignatureVerificationError):
        easypost.util.validate_webhook(body, sent, SECRET)
    assert EasyPostWebhook([SECRET]).verify(other_payload, other_headers, NOW)


def test_a_replayed_request_is_the_same_scans_with_the_same_event_ids(fake: FakeEasyPost) -> None:
    first = signed(_event(fake, "in_transit"), SECRET)
    later = signed(_event(fake, "delivered"), SECRET)  # the next event repeats the first scan
    webhook = EasyPostWebhook([SECRET])
    once = webhook.verify(*first, NOW)
    assert webhook.verify(*first, NOW + timedelta(days=30)) == once  # no timestamp: the dedupe stops replays
    again = webhook.verify(*later, NOW)
    assert [e.event_id for e in again][: len(once)] == [e.event_id for e in once]
    assert len({e.event_id for e in again}) == len(again) == len(once) + 1


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"description": 5}',
        b'{"description": "tracker.updated", "result": []}',
        (
            b'{"description": "tracker.updated", "result": {"id": "trk_1", "tracking_code": "EZ1",'
            b' "tracking_details": [{"status": "in_transit", "datetime": "yesterday"}]}}'
        ),
        b'{"description": "tracker.updated"}',
        b"[" * 100_000,
    ],
)
def test_a_signed_body_that_is_no_event_we_read_is_invalid_event(body: bytes) -> None:
    with pytest.raises(InvalidWebhook) as refused:
        EasyPostWebhook([SECRET]).verify(body, {"X-Hmac-Signature": signature(body, SECRET)}, NOW)
    assert refused.value.code == "invalid_event"


def test_events_about_other_things_give_no_scans() -> None:
    body = json.dumps(
        {"id": "evt_1", "object": "Event", "description": "batch.updated", "result": {"id": "batch_1", "object": "Batch"}}
    ).encode()
    assert EasyPostWebhook([SECRET]).verify(body, {"X-Hmac-Signature": signature(body, SECRET)}, NOW) == []


def test_a_webhook_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        EasyPostWebhook([])


def test_easypost_is_configured_from_the_environment_and_its_webhook_only_where_it_is_the_carrier() -> None:
    from service.bootstrap import carrier_webhook
    from service.config import Settings

    settings = Settings.from_env(
        {
            "EASYPOST_API_KEY": "EZAK_live",
            "EASYPOST_WEBHOOK_SECRET": " new, old ,",
            "RETURNS_EASYPOST_API_BASE": "http://127.0.0.1:9/v2",
        }
    )
    assert (settings.easypost_api_key, settings.easypost_api_base) == ("EZAK_live", "http://127.0.0.1:9/v2")
    assert settings.easypost_webhook_secrets == ("new", "old")
    assert isinstance(carrier_webhook(settings), EasyPostWebhook)
    assert carrier_webhook(Settings.from_env({"EASYPOST_WEBHOOK_SECRET": "s"})) is None  # the simulated carrier's
    assert carrier_webhook(Settings.from_env({"EASYPOST_API_KEY": "EZAK_live"})) is None  # no secret: nothing verifies
