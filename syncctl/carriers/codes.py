"""Correios object codes (UPU S10): two service letters, eight serial digits, a check
digit and two country letters. Shape and check digit only: service prefixes are many
and change, so none is whitelisted (reference §2)."""

from __future__ import annotations

import re

S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
_S10 = re.compile(r"^[A-Z]{2}[0-9]{9}[A-Z]{2}$")


def canonical_s10(code: str) -> str:
    """The form Correios takes: upper case, no surrounding spaces."""
    return code.strip().upper()


def s10_check_digit(serial: str) -> int:
    """The check digit of an eight-digit serial."""
    total = sum(int(digit) * weight for digit, weight in zip(serial, S10_WEIGHTS, strict=True))
    remainder = total % 11
    if remainder == 0:
        return 5
    if remainder == 1:
        return 0
    return 11 - remainder


def s10_problem(code: str) -> str | None:
    """Why `code` is not a Correios object code, or None when it is one."""
    canonical = canonical_s10(code)
    if not _S10.match(canonical):
        return f"{code!r} is not a Correios object code (two letters, nine digits, two letters)"
    expected = s10_check_digit(canonical[2:10])
    if int(canonical[10]) != expected:
        return f"{code!r} has a wrong check digit ({canonical[10]}; the serial gives {expected}): a typing error?"
    return None


def is_valid_s10(code: str) -> bool:
    return s10_problem(code) is None
