"""Errors of the edge gateway, under the one root :class:`~farsight.errors.FarsightError`.

(Kept here because ``farsight/errors.py`` is owned elsewhere; they may move there unchanged.)
"""

from __future__ import annotations

from farsight.errors import FarsightError


class EdgeError(FarsightError):
    """Raised when the gateway cannot start or carry out an operation (buffer, key, listener)."""


class BufferFullError(EdgeError):
    """Raised when the buffer refuses a message because it is full under the 'refuse' policy."""
