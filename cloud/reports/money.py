"""Money in files people open: minor units (what the hub keeps) as decimal amounts of the currency."""

from __future__ import annotations

from decimal import Decimal

# ISO 4217 currencies whose minor unit is not the cent; every other has two decimals.
_PLACES = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
                     "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def places(currency: str) -> int:
    """Decimals of `currency`'s amounts (2 for EUR, 0 for JPY)."""
    return _PLACES.get(currency, 2)


def major(minor: float, currency: str) -> Decimal:
    """`minor` units (an average may be fractional: rounded half even to a whole one) as an amount of `currency`:
    1250 EUR cents is Decimal('12.50')."""
    whole = minor if isinstance(minor, int) else round(minor)
    return Decimal(whole).scaleb(-places(currency)).quantize(Decimal(1).scaleb(-places(currency)))


def amount_text(minor: int, currency: str) -> str:
    """`minor` units as the amount's text (1250 EUR: "12.50"); integer arithmetic, for files of millions of rows."""
    digits = places(currency)
    if not digits:
        return str(minor)
    whole, part = divmod(abs(minor), 10**digits)
    return f"{'-' if minor < 0 else ''}{whole}.{part:0{digits}d}"
