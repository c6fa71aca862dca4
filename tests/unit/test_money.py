from __future__ import annotations

import pytest

from domain.errors import CurrencyMismatch, InvalidRequest
from domain.money import (
    Money,
    check_currency,
    exponent,
    percent_of,
    split_half,
    to_major,
)


@pytest.mark.parametrize(
    ("currency", "digits"), [("JPY", 0), ("KRW", 0), ("EUR", 2), ("USD", 2), ("KWD", 3), ("BHD", 3), ("CLF", 4)]
)
def test_exponents(currency: str, digits: int) -> None:
    assert exponent(currency) == digits


@pytest.mark.parametrize(
    ("amount", "currency", "major"),
    [
        (1999, "EUR", "19.99"),
        (5, "EUR", "0.05"),
        (0, "EUR", "0.00"),
        (500, "JPY", "500"),
        (1234, "KWD", "1.234"),
        (-250, "USD", "-2.50"),
    ],
)
def test_to_major(amount: int, currency: str, major: str) -> None:
    assert to_major(amount, currency) == major


def test_arithmetic_stays_in_integers_and_one_currency() -> None:
    total = Money(1999, "EUR") + Money(1, "EUR")
    assert total == Money(2000, "EUR") and isinstance(total.amount, int)
    assert Money(2000, "EUR") - Money(1999, "EUR") == Money(1, "EUR")
    assert Money(1999, "EUR").times(3) == Money(5997, "EUR")
    with pytest.raises(CurrencyMismatch):
        Money(1, "EUR") + Money(1, "USD")


@pytest.mark.parametrize(
    ("amount", "bp", "result"),
    [(1999, 1500, 300), (1000, 1500, 150), (1, 5000, 1), (3, 5000, 2), (2, 2500, 1), (1, 4999, 0), (0, 1000, 0)],
)
def test_percent_rounds_half_up(amount: int, bp: int, result: int) -> None:
    assert percent_of(amount, bp) == result


@pytest.mark.parametrize(("amount", "first", "second"), [(1000, 500, 500), (999, 499, 500), (1, 0, 1), (0, 0, 0)])
def test_split_half_gives_the_odd_unit_to_the_second_share(amount: int, first: int, second: int) -> None:
    assert split_half(amount) == (first, second)
    assert sum(split_half(amount)) == amount


def test_unknown_currency_is_refused() -> None:
    assert check_currency("EUR") == "EUR"
    with pytest.raises(InvalidRequest):
        check_currency("XXX")
