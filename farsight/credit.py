"""Unified social credit code (统一社会信用代码) validation, GB 32100-2015."""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""31 symbols; I, O, S, V and Z are never used."""

WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_VALUE = {c: i for i, c in enumerate(ALPHABET)}


def check_char(first17: str) -> str:
    """Return the check character for the first 17 characters of a code.

    Raises ``ValueError`` when the input is not 17 characters of the GB 32100 alphabet.
    """
    if len(first17) != 17:
        raise ValueError(f"need 17 characters, got {len(first17)}")
    try:
        total = sum(_VALUE[c] * w for c, w in zip(first17, WEIGHTS))
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not in the GB 32100 alphabet") from None
    return ALPHABET[(31 - total % 31) % 31]


def credit_code_problem(code: str) -> str | None:
    """Return why ``code`` is not a valid unified social credit code, or ``None`` if it is."""
    if not isinstance(code, str):
        return "must be a string"
    if len(code) != 18:
        return f"must be 18 characters, has {len(code)}"
    bad = sorted({c for c in code if c not in _VALUE})
    if bad:
        return f"characters {''.join(bad)!r} are not in the GB 32100 alphabet {ALPHABET}"
    expected = check_char(code[:17])
    if code[17] != expected:
        return f"check character is {code[17]!r}, GB 32100 gives {expected!r}"
    return None


def is_valid_credit_code(code: str) -> bool:
    """True when ``code`` is 18 characters of the alphabet with a correct check character."""
    return credit_code_problem(code) is None


def make_credit_code(first17: str) -> str:
    """Complete 17 characters with their check character (for simulators and tests)."""
    return first17 + check_char(first17)
