"""Amounts of money: exact while they are added up, rounded once where they are shown.

Two forms of one exact ``Decimal``:

- ``amount_text`` is the exact value as the REST API and the CSVs carry it: plain notation (no
  exponent), with the currency's minor digits at least and more only when the value has them
  ("12.30", "0.3164304", "0.00"). Parsing it gives the exact amount back.
- ``money_text`` is the figure a page shows: rounded half-even to the currency's minor unit
  ("0.32"), with thousands separators. A figure that this rounding would leave with fewer than
  two significant digits (not zero, below ten minor units: 0.10 USD, 10 JPY) shows three
  significant digits instead ("0.0139", "0.000316"), so a cheap model never reads "0.00".

Every page (the Usage Statistics cards and table, the month-end report, budgets) goes through
``money_text``, in Python or as the ``money`` template filter; the trend chart's script applies
the same rule to the exact strings it receives.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext

# ISO 4217 minor units that differ from the usual 2 decimals.
MINOR_UNITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}  # fmt: skip
# Digits a small figure keeps when rounding to the minor unit would leave it fewer than two.
SIGNIFICANT_DIGITS = 3
_PRECISION = 60


def minor_digits(currency: str) -> int:
    return MINOR_UNITS.get(currency, 2)


def minor_unit(currency: str) -> Decimal:
    """The quantum amounts in ``currency`` are shown at: Decimal("0.01") for most."""
    return Decimal(1).scaleb(-minor_digits(currency))


def round_amount(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded half-even to the currency's minor unit (where a figure is shown, only)."""
    with localcontext(prec=_PRECISION):  # quantize fails beyond the default 28 digits
        return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_EVEN)


def _decimals(value: Decimal) -> int:
    """The decimals ``value`` needs to be written exactly (0 for whole numbers). Not through
    ``normalize()``: that rounds to the context's 28 digits."""
    _sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or exponent >= 0 or not any(digits):
        return 0
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -exponent - trailing)


def amount_text(amount: Decimal, currency: str) -> str:
    """The exact amount, plain, with at least the currency's minor digits: "12.30", "0.3164304"."""
    return f"{amount:.{max(minor_digits(currency), _decimals(amount))}f}"


def shown_amount(amount: Decimal, currency: str) -> Decimal:
    """The figure shown for ``amount``: rounded to the minor unit, or to three significant digits
    when it is not zero and below ten minor units."""
    if amount and abs(amount) < 10 * minor_unit(currency):
        quantum = Decimal(1).scaleb(amount.adjusted() - SIGNIFICANT_DIGITS + 1)
        return amount.quantize(quantum, rounding=ROUND_HALF_EVEN)
    return round_amount(amount, currency)


def money_text(amount: Decimal, currency: str) -> str:
    """The figure a page shows for an exact ``amount``: "1,234.57", "0.32", "0.0139", "0.00"."""
    shown = shown_amount(amount, currency)
    return f"{shown:,.{max(minor_digits(currency), _decimals(shown))}f}"
