"""Regular expressions that run in linear time, for patterns people type into the platform.

Silences and inhibition rules take label matchers with ``~regex`` values from API callers and
configuration. Python's ``re`` backtracks: ``(.|.)+!`` against a 30-character value takes
seconds, holding the interpreter lock, and stalls every thread of the process (the hub answered
``/healthz`` in 4.8 s for half a minute). These patterns are compiled by RE2 (``google-re2``),
whose automata match in time linear in the value, with a bound on the pattern's length and on
the memory of its compiled program.

RE2's syntax is Python's for everything but what needs backtracking: no backreferences
(``\\1``, ``(?P=name)``), no lookahead or lookbehind (``(?=``, ``(?!``, ``(?<=``, ``(?<!``),
no atomic groups or possessive quantifiers, no conditionals, no ``\\Z`` (write ``\\z`` or
``$``), counted repetition up to ``{1000}``. ``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII
only: write ``\\p{Han}``, ``\\p{L}`` or ``\\p{N}`` for Chinese text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import re2

from farsight.errors import FarsightError

MAX_PATTERN = 256
"""Longest pattern, in characters (a label matcher is a short expression, not a program)."""

MAX_SUBJECT = 4096
"""Longest value a pattern is matched against; a longer value does not match (a label value
is a site id, a plate, a metric name: never kilobytes)."""

MAX_PROGRAM_BYTES = 1 << 20
"""Memory RE2 may give one compiled pattern; ``[\\p{Han}]{1000}`` needs more and is refused."""

UNSUPPORTED = (
    "RE2 syntax: no backreferences (\\1), lookahead or lookbehind ((?=, (?!, (?<=, (?<!),"
    " atomic groups, possessive quantifiers or \\Z (use \\z or $); repetition up to {1000};"
    " \\d \\w \\s \\b are ASCII only (use \\p{Han}, \\p{L}, \\p{N})"
)
"""What people must know when a pattern is refused (the hub's 422, the docs)."""


class PatternError(FarsightError, ValueError):
    """Raised when a pattern is too long, too large once compiled, or not valid RE2 syntax."""


def _options() -> Any:
    options = re2.Options()
    options.max_mem = MAX_PROGRAM_BYTES
    # Refusals are reported to the caller; RE2 would also print each one on stderr.
    options.log_errors = False
    return options


_OPTIONS = _options()


@dataclass(frozen=True, slots=True)
class LinearPattern:
    """A compiled pattern; :meth:`fullmatch` runs in time linear in the value's length."""

    source: str
    _compiled: Any = field(compare=False, repr=False)
    """RE2's program; two patterns of one source are equal."""

    def fullmatch(self, value: str) -> bool:
        """True when the whole of ``value`` matches (values over :data:`MAX_SUBJECT`: False)."""
        if len(value) > MAX_SUBJECT:
            return False
        try:
            return self._compiled.fullmatch(value) is not None
        except UnicodeEncodeError:
            return False  # a lone surrogate (from a JSON escape): no text matches it


def compile_linear(pattern: str) -> LinearPattern:
    """Compile ``pattern`` with RE2.

    Parameters
    ----------
    pattern : str
        At most :data:`MAX_PATTERN` characters of RE2 syntax (see the module's docstring).

    Returns
    -------
    LinearPattern
        Compiled once; matching allocates nothing that grows with the pattern's history.

    Raises
    ------
    PatternError
        Not a string, too long, invalid RE2 syntax (the message says RE2's reason and what RE2
        does not support), or a program larger than :data:`MAX_PROGRAM_BYTES`.
    """
    if not isinstance(pattern, str):
        raise PatternError(f"a pattern must be a string, not {type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN:
        raise PatternError(f"the pattern is longer than {MAX_PATTERN} characters ({len(pattern)})")
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except UnicodeEncodeError as exc:
        raise PatternError(
            f"the pattern is not valid Unicode (lone surrogate at {exc.start})"
        ) from None
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(f"{reason}; {UNSUPPORTED}") from None
    return LinearPattern(pattern, compiled)


__all__ = [
    "MAX_PATTERN",
    "MAX_SUBJECT",
    "UNSUPPORTED",
    "LinearPattern",
    "PatternError",
    "compile_linear",
]
