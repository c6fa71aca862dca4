"""Money as an integer amount in the currency's minor unit. Never floats."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from domain.errors import CurrencyMismatch, InvalidRequest

# ISO 4217 minor-unit exponents. Currencies not listed use 2; the exceptions are listed in full.
_ZERO_DECIMAL = {
    "BIF",
    "CLP",
    "DJF",
    "GNF",
    "ISK",
    "JPY",
    "KMF",
    "KRW",
    "PYG",
    "RWF",
    "UGX",
    "UYI",
    "VND",
    "VUV",
    "XAF",
    "XOF",
    "XPF",
}
_THREE_DECIMAL = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}
_FOUR_DECIMAL = {"CLF", "UYW"}
KNOWN_CURRENCIES = (
    _ZERO_DECIMAL
    | _THREE_DECIMAL
    | _FOUR_DECIMAL
    | {
        "AED",
        "ARS",
        "AUD",
        "BGN",
        "BRL",
        "CAD",
        "CHF",
        "CNY",
        "COP",
        "CZK",
        "DKK",
        "EGP",
        "EUR",
        "GBP",
        "HKD",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "MAD",
        "MXN",
        "MYR",
        "NGN",
        "NOK",
        "NZD",
        "PEN",
        "PHP",
        "PKR",
        "PLN",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "SAR",
        "SEK",
        "SGD",
        "THB",
        "TRY",
        "TWD",
        "UAH",
        "USD",
        "ZAR",
    }
)


def exponent(currency: str) -> int:
    """Digits after the decimal point in the currency's major unit (JPY 0, EUR 2, KWD 3)."""
    if currency in _ZERO_DECIMAL:
        return 0
    if currency in _THREE_DECIMAL:
        return 3
    if currency in _FOUR_DECIMAL:
        return 4
    return 2


def check_currency(currency: str) -> str:
    if currency not in KNOWN_CURRENCIES:
        raise InvalidRequest(
            f"unknown currency '{currency}'",
            [{"field": "currency", "message": "must be an ISO 4217 code such as EUR"}],
        )
    return currency


def to_major(amount: int, currency: str) -> str:
    """The amount as a decimal string in major units: 1999 EUR → '19.99', 500 JPY → '500'."""
    exp = exponent(currency)
    return str(Decimal(amount).scaleb(-exp).quantize(Decimal(1).scaleb(-exp)))


def percent_of(amount: int, basis_points: int) -> int:
    """``amount × basis_points / 10000`` rounded half-up to a whole minor unit (1 % = 100 bp)."""
    numerator = amount * basis_points
    quotient, remainder = divmod(numerator, 10_000)
    return quotient + (1 if remainder * 2 >= 10_000 else 0)


def split_half(amount: int) -> tuple[int, int]:
    """Split in two; the odd minor unit goes to the second share (the merchant's, by policy)."""
    first = amount // 2
    return first, amount - first


class Money(msgspec.Struct, frozen=True):
    amount: int
    currency: str

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def times(self, quantity: int) -> Money:
        return Money(self.amount * quantity, self.currency)

    def major(self) -> str:
        return to_major(self.amount, self.currency)
