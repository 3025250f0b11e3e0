"""Amounts: integers in minor units everywhere inside hookhub."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# ISO 4217 currencies whose minor unit is not 1/100. Everything else has two decimals.
_EXPONENTS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3, "CLF": 4, "UYW": 4,
}


def exponent(currency: str) -> int:
    """Number of decimals of ``currency``'s minor unit (2 unless ISO 4217 says otherwise)."""
    return _EXPONENTS.get(currency.upper(), 2)


def to_minor_units(major: Decimal | int | str, currency: str) -> int:
    """Convert a major-unit amount (``Decimal("10.5")`` HTG) to minor units (``1050``).

    Floats are refused: they cannot carry money exactly. A value with more decimals than the
    currency has, a negative or a non-finite value raises ``ValueError``.
    """
    if isinstance(major, float) or isinstance(major, bool):
        raise TypeError("amounts must be Decimal, int or str, never float")
    try:
        value = Decimal(major)
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"not an amount: {major!r}") from exc
    if not value.is_finite() or value < 0:
        raise ValueError(f"not an amount: {major!r}")
    minor = value.scaleb(exponent(currency))
    if minor != minor.to_integral_value():
        raise ValueError(f"{major} {currency} has more decimals than the currency allows")
    return int(minor)


def to_major_units(minor: int, currency: str) -> Decimal:
    """Convert minor units (``1050``) to an exact major-unit ``Decimal`` (``Decimal("10.50")``)."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError("minor-unit amounts must be int")
    return Decimal(minor).scaleb(-exponent(currency))
