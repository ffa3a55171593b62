"""NF-e helpers: the access key's check digit and money in whole cents. Pure functions."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

from syncctl.domain import CENT

KEY_LENGTH = 44
# Digits everywhere except the issuer's CNPJ (positions 7-18), which may be
# alphanumeric from July 2026 (NT 2025.001); a numeric key always matches.
_KEY_SHAPE = re.compile(r"[0-9]{6}[A-Z0-9]{12}[0-9]{26}")


def check_digit(first43: str) -> int:
    """Modulus 11 over the first 43 characters, weights 2..9 cycling from the right."""
    total, weight = 0, 2
    for char in reversed(first43):
        total += (ord(char) - 48) * weight  # the digit itself; letters count as ASCII - 48
        weight = 2 if weight == 9 else weight + 1
    remainder = total % 11
    return 0 if remainder < 2 else 11 - remainder


def access_key_problem(key: str) -> str | None:
    """Why `key` is not a well-formed NF-e access key, or None when it is."""
    if len(key) != KEY_LENGTH:
        return f"NF-e access key {key!r} has {len(key)} characters, not {KEY_LENGTH}"
    if not _KEY_SHAPE.fullmatch(key):
        return f"NF-e access key {key!r} must be digits (only its CNPJ part may hold letters)"
    expected = check_digit(key[:43])
    if int(key[43]) != expected:
        return f"NF-e access key {key!r} has check digit {key[43]}, expected {expected}: the key is mistyped"
    return None


def cents(value: Decimal) -> int:
    """A money amount in whole cents (half a cent rounds up, as on the NF-e)."""
    return int((value / CENT).to_integral_value(rounding=ROUND_HALF_UP))


def from_cents(value: int | Decimal) -> Decimal:
    """Whole cents (an int, or a Decimal like 9990.0 from a JSON body) as a money amount."""
    amount = (Decimal(value) * CENT).quantize(CENT)
    return amount if amount else amount.copy_abs()  # never "-0.00"
