"""Pydantic request and response schemas of the hub API.

Requests refuse unknown keys (``extra="forbid"``) so a misspelt field is an error, not a no-op.
Times are ISO 8601 strings with their UTC offset, as the stores produce them.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

NOTE_MAX = 2000
"""Longest note on an acknowledgement or closure; notes are free text shown in the history."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


# -- requests ----------------------------------------------------------------------------------


class ActionRequest(_Request):
    """Body of every handling action: the comment every step is recorded with."""

    note: str = Field(
        title="Comment",
        description="Why this step is taken; recorded in the alert's history and audit log.",
        min_length=1,
        max_length=NOTE_MAX,
    )

    @field_validator("note")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("every step needs a comment saying why")
        return v

    def data(self) -> dict[str, Any]:
        """The action's own fields (everything but the comment)."""
        return self.model_dump(mode="json", exclude={"note"}, exclude_none=True)


class AckRequest(ActionRequest):
    """Body of ``POST /api/alerts/{id}/ack``: someone is on it."""


class DispatchRequest(ActionRequest):
    """Body of ``POST /api/alerts/{id}/dispatch``: send people for on-site verification (核查)."""

    team: str = Field(
        title="Team", description="Team sent to the site.", min_length=1, max_length=200
    )
    inspector: str = Field(
        title="Inspector", description="Inspector in charge.", min_length=1, max_length=200
    )
    due: date = Field(
        title="Due", description="Date by which the verification is due (YYYY-MM-DD)."
    )


class VerifyRequest(ActionRequest):
    """Body of ``POST /api/alerts/{id}/verify``: what the on-site check found."""

    finding: Literal["violation_confirmed", "no_violation", "equipment_fault", "data_fault"] = (
        Field(title="Finding", description="Outcome of the on-site check.")
    )
    evidence: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(
        default_factory=list,
        title="Evidence",
        description="sha256 hashes of evidence files (photos, records; POST /api/evidence stores"
        " one).",
        max_length=100,
    )


class CloseRequest(ActionRequest):
    """Body of ``POST /api/alerts/{id}/close``: the disposal (处置), or a desk closure before
    dispatch."""

    case_number: str | None = Field(
        None, title="Case number", description="Enforcement case number.", max_length=100
    )
    penalty: str | None = Field(
        None,
        title="Penalty",
        description="Penalty decided, as text (amount and basis).",
        max_length=500,
    )
    rectification: str | None = Field(
        None,
        title="Rectification order",
        description="What the operator must put right.",
        max_length=2000,
    )
    recheck: date | None = Field(
        None, title="Re-check date", description="When the rectification is checked again."
    )


class ReopenRequest(ActionRequest):
    """Body of ``POST /api/alerts/{id}/reopen``: the reason goes in the comment."""


class CommentRequest(ActionRequest):
    """Body of ``POST /api/alerts/{id}/comment``: a remark, no change of state."""


# -- responses ---------------------------------------------------------------------------------


class HealthOut(_Response):
    status: str = Field(description="'ok' when the hub can read its database.")
    db: str = Field(description="'ok', or why the database cannot be read.")


class LocationOut(_Response):
    lon: float
    lat: float


class DeviceOut(_Response):
    id: str
    kind: str
    metrics: list[str]
    protocol: str
    cadence_s: float


class ReadingOut(_Response):
    site: str
    device: str
    metric: str
    value: float
    unit: str
    ts: str
    flag: str
    seq: int | None = None
    age_s: float | None = Field(
        None, description="Seconds between the reading's time and the response."
    )


class SiteOut(_Response):
    id: str
    name: str
    department: str
    city: str
    kind: str
    entity_id: str = Field(description="Unified social credit code of the operator.")
    entity_name: str
    item_code: str
    credit_grade: str
    location: LocationOut
    limits: dict[str, float]
    tags: list[str]
    devices: list[DeviceOut]
    open_alerts: int = Field(
        description="Alerts of the site that are not closed (open or acknowledged)."
    )
    latest: list[ReadingOut] = Field(description="Newest reading of every device and metric.")


class SeriesPoint(_Response):
    """A raw reading, or with downsampling one bucket (``value`` is the bucket average)."""

    ts: str
    value: float
    unit: str
    device: str | None = None
    flag: str | None = None
    seq: int | None = None
    min: float | None = None
    max: float | None = None
    count: int | None = None


class SeriesOut(_Response):
    site: str
    metric: str
    start: str = Field(alias="from")
    end: str = Field(alias="to")
    interval: float | None = Field(
        None, description="Bucket width in seconds; null for raw readings."
    )
    points: list[SeriesPoint]
    truncated: bool = Field(description="True when more points matched than one response carries.")


class AlertOut(_Response):
    id: int
    fingerprint: str
    rule_id: str
    site: str
    device: str
    metric: str
    department: str
    entity_id: str
    item_code: str
    severity: str
    summary: str
    activity: str = Field(description="firing or resolved (set by the rules).")
    state: str = Field(description="open, acknowledged or closed (set by people).")
    value: float | None
    threshold: float | None
    starts_at: str
    last_seen: str
    resolved_at: str | None
    count: int
    created: str
    updated: str
    labels: dict[str, str]
    previous_id: int | None = None
    handling: dict[str, Any] = Field(
        default_factory=dict,
        description="Dispatch, verification and disposal details recorded by the handling steps.",
    )
    credit_grade: str = Field(
        "B", description="Credit grade of the operator when the alert opened."
    )
    entity_repeats: int = Field(
        0, description="Earlier alerts of the same operator when this one opened."
    )
    evidence: list[str] = Field(
        default_factory=list, description="sha256 hashes of evidence files."
    )
    risk: dict[str, Any] | None = Field(
        None,
        description="Risk score and the factors that make it: {score, factors: [{name, detail,"
        " multiplier}]}.",
    )
    suppressed: dict[str, Any] = Field(
        default_factory=dict,
        description="Why the alert is muted: {silence: id} or {inhibited_by: alert id}; empty when"
        " not.",
    )
    escalation: int = Field(
        0, description="Times the alert was escalated for missing a handling deadline."
    )
    due_at: str | None = Field(
        None,
        description="Deadline of the current handling step (acknowledgement, then verification).",
    )


class AlertEventOut(_Response):
    id: int
    alert_id: int
    at: str
    actor: str
    action: str
    note: str
    data: dict[str, Any]


class AlertPage(_Response):
    items: list[AlertOut]
    total: int
    limit: int
    offset: int
    next_cursor: str | None = Field(
        None, description="Pass as cursor= for the next page; null on the last page."
    )
    total_exact: bool = Field(
        True,
        description="False when total is a lower bound (a text search counts up to 1,000 matches).",
    )


class AlertDetail(_Response):
    alert: AlertOut
    events: list[AlertEventOut]


class DeadLetterOut(_Response):
    id: int | None
    received: str
    topic: str
    codec: str | None
    reason: str
    detail: str
    size: int
    payload_b64: str = Field(description="The raw payload, base64.")
    preview: str = Field(description="Printable start of the payload; other bytes shown as '.'.")


class DeadLetterPage(_Response):
    items: list[DeadLetterOut]
    total: int
    limit: int


class AlertCountsOut(_Response):
    severity: dict[str, int]
    state: dict[str, int]


class StatsOut(_Response):
    sites: int
    readings: int
    dead_letters: int | None = Field(
        description="Rejected messages; null for a department's token (they belong to no"
        " department)."
    )
    alerts: AlertCountsOut = Field(
        description="Alerts that are not closed, by severity and by state."
    )
    stream_subscribers: int


class MeOut(_Response):
    user: str
    department: str | None = Field(description="The token's department; null: province-wide.")
    departments: list[str] = Field(description="The departments the token reads.")
    role: Literal["viewer", "officer", "supervisor", "admin"] = Field(
        description="viewer reads; officer handles alerts; supervisor also silences, reopens,"
        " exports and dispatches joint visits; admin also reads the operations views."
    )
    expires: str | None = Field(description="When the token (or the browser session) ends.")
