"""GTIN (EAN-8, UPC-A, EAN-13, GTIN-14) codes: length and the GS1 check digit. Pure functions."""

from __future__ import annotations

import re

LENGTHS = (8, 12, 13, 14)
_DIGITS = re.compile(r"[0-9]+")


def check_digit(body: str) -> int:
    """GS1 modulo 10 over the digits before the check digit: weights 3, 1, 3, ... from the right."""
    total = sum(int(digit) * (3 if position % 2 == 0 else 1) for position, digit in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def gtin_problem(code: str) -> str | None:
    """Why `code` is not a GTIN, or None when it is."""
    if not _DIGITS.fullmatch(code):
        return f"{code!r} must be digits only"
    if len(code) not in LENGTHS:
        return f"{code!r} has {len(code)} digits, not 8, 12, 13 or 14"
    expected = check_digit(code[:-1])
    if int(code[-1]) != expected:
        return f"{code!r} has check digit {code[-1]}, expected {expected}: the code is mistyped"
    return None
