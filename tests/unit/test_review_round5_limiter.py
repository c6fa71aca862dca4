"""The fifth outside review, in process: the order lookup's rate limiter keeps every bucket it
ever made, so a caller with many addresses (an IPv6 prefix, a botnet) or many e-mails grows the
API process without bound; and a limit of 0 divides by zero."""

from __future__ import annotations

from service.portal import RateLimiter


def test_a_refilled_bucket_is_forgotten() -> None:
    now = [0.0]
    limiter = RateLimiter(per_hour=20, clock=lambda: now[0])
    for n in range(10_000):  # one lookup each from 10 000 addresses
        assert limiter.take(f"2001:db8::{n:x}") is None
    now[0] += 2 * 3600  # every bucket is full again: the same as never having been used
    assert limiter.take("2001:db8::ffff:1") is None
    assert len(limiter._buckets) < 100


def test_a_bucket_refills_and_limits_again() -> None:
    now = [0.0]
    limiter = RateLimiter(per_hour=2, clock=lambda: now[0])
    assert [limiter.take("k"), limiter.take("k")] == [None, None]
    assert limiter.take("k") == 1800  # one token comes back every half hour
    now[0] += 1800
    assert limiter.take("k") is None and limiter.take("k") is not None


def test_a_limit_of_zero_refuses_instead_of_failing() -> None:
    limiter = RateLimiter(per_hour=0, clock=lambda: 0.0)
    assert limiter.take("k") is not None
