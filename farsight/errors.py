"""One exception hierarchy for Farsight.

Every error Farsight raises derives from :class:`FarsightError`; third-party exceptions
(paho, sqlite3, pydantic, rasterio) are converted once, at the boundary that called them.
"""

from __future__ import annotations


class FarsightError(Exception):
    """Raised for any failure Farsight itself reports."""


class ConfigError(FarsightError):
    """Raised when settings, a registry or a rule file is invalid; carries every problem found."""

    def __init__(self, problems: list[ConfigProblem] | str, source: str = "") -> None:
        if isinstance(problems, str):
            problems = [ConfigProblem(path="", value=None, message=problems)]
        self.problems = problems
        self.source = source
        head = f"{source}: " if source else ""
        lines = [f"{head}{len(problems)} configuration error(s)"]
        lines += [f"  {p}" for p in problems]
        super().__init__("\n".join(lines))


class ConfigProblem:
    """One configuration problem: where (key path), what (value) and how to fix it (message)."""

    __slots__ = ("message", "path", "value")

    def __init__(self, path: str, value: object, message: str) -> None:
        self.path = path
        self.value = value
        self.message = message

    def __str__(self) -> str:
        where = self.path or "<root>"
        return f"{where}: {self.message} (got {self.value!r})"

    def __repr__(self) -> str:
        return f"ConfigProblem({self.path!r}, {self.value!r}, {self.message!r})"


class MissingExtraError(FarsightError):
    """Raised when a role needs an optional package that is not installed; names the extra.

    ``pip install 'farsight[EXTRA]'`` brings it (see ``[project.optional-dependencies]``).
    """

    def __init__(self, package: str, extra: str, needed_for: str, instead: str = "") -> None:
        self.package = package
        self.extra = extra
        hint = f" ({instead})" if instead else ""
        super().__init__(
            f"{package} is not installed, and {needed_for} needs it: "
            f"pip install 'farsight[{extra}]'{hint}"
        )


class RegistryError(ConfigError):
    """Raised when the site registry is invalid (bad credit code, duplicate id, unknown kind)."""


class DecodeError(FarsightError):
    """Raised when a payload cannot be decoded; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class StoreError(FarsightError):
    """Raised when a database cannot be opened or a statement fails."""


class BrokerError(FarsightError):
    """Raised when the MQTT broker cannot be started or reached."""


class PkiError(FarsightError):
    """Raised when a certificate or key cannot be made, read or written (an existing CA that
    would be replaced, a missing CA, a bad name or validity)."""


class RuleError(ConfigError):
    """Raised when a rule file is invalid or names an unknown rule kind."""


class AlertError(FarsightError):
    """Raised for an alert operation that cannot be carried out."""


class NotFoundError(AlertError):
    """Raised when an alert, site or other record does not exist."""


class TransitionError(AlertError):
    """Raised when an alert state change is not allowed from its current state."""


class MatcherError(AlertError, ValueError):
    """Raised when a matcher set is malformed: bad label name, value type or regular expression."""


class SilenceError(AlertError, ValueError):
    """Raised when a silence is invalid (times, reason, matchers) or cannot be expired (expired)."""


class ScopeError(AlertError):
    """Raised when a department-scoped actor includes an alert of another department in a visit."""


class CursorError(AlertError, ValueError):
    """Raised when a pagination cursor is malformed or belongs to another listing."""


class AuthError(FarsightError):
    """Raised when a credential is missing, unknown or lacks the scope for an action."""


class AuditError(FarsightError):
    """Raised when the audit log cannot be appended to, read or anchored, or an anchor is bad."""


class VideoSourceError(FarsightError):
    """Raised when a camera or video source spec is invalid or a video file cannot be opened."""


class CredentialError(FarsightError):
    """Raised when the credential store cannot be read or written, or names no such identity."""
