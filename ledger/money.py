"""Money as Decimal in the currency's minor units (ISO 4217 exponents from `iso4217`)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from ledger.errors import InvalidInput

MAX_AMOUNT = Decimal("1e15")
#: What people write for money; Decimal would also take "1_000", "1e3" and "NaN".
PLAIN_DECIMAL = re.compile(r"-?([0-9]+(\.[0-9]*)?|\.[0-9]+)")


@lru_cache(maxsize=None)
def exponent(currency: str) -> int:
    import iso4217

    try:
        found = iso4217.Currency(currency)
    except (ValueError, KeyError):
        raise InvalidInput(f"unknown currency {currency!r}: use an ISO 4217 code such as EUR") from None
    minor = found.exponent
    return 0 if minor is None else int(minor)


def check_currency(currency: str) -> str:
    code = str(currency).strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise InvalidInput(f"unknown currency {currency!r}: use an ISO 4217 code such as EUR")
    exponent(code)
    return code


def parse_amount(value: str | Decimal | int, currency: str, what: str = "amount",
                 allow_zero: bool = False) -> Decimal:
    """A positive decimal with at most the currency's minor units, quantized to them."""
    if isinstance(value, float):
        raise InvalidInput(f"{what} must be given as a decimal string, not a float")
    if isinstance(value, str) and not PLAIN_DECIMAL.fullmatch(value.strip()):
        raise InvalidInput(f"{what} {value!r} is not a plain decimal number such as 1500.00")
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"{what} {value!r} is not a decimal number") from None
    if not amount.is_finite():
        raise InvalidInput(f"{what} {value!r} is not a finite number")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise InvalidInput(f"{what} must be {'zero or more' if allow_zero else 'positive'}, got {value}")
    if amount >= MAX_AMOUNT:
        raise InvalidInput(f"{what} {value} is too large")
    places = exponent(currency)
    if -amount.normalize().as_tuple().exponent > places:
        raise InvalidInput(f"{what} {value} has more than {places} decimal places for {currency}")
    return quantize(amount, currency)


def quantize(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-exponent(currency)))


def format_amount(amount: Decimal, currency: str) -> str:
    """A decimal string with the currency's exponent: "1500.00", JPY "1500"."""
    return f"{quantize(amount, currency):f}"


def to_minor(amount: Decimal, currency: str) -> int:
    """An amount as a whole number of the currency's minor units (cents): 1500.00 EUR -> 150000."""
    return int(quantize(amount, currency).scaleb(exponent(currency)))


def from_minor(minor: int, currency: str) -> Decimal:
    return quantize(Decimal(minor).scaleb(-exponent(currency)), currency)
