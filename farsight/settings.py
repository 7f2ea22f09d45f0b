"""Settings: one pydantic model tree, loaded from YAML plus ``FARSIGHT__SECTION__KEY`` overrides.

Every field has a default (the demo runs with no file at all), bounds, a title and a
description; unknown keys are refused. The environment is read by pydantic-settings (prefix,
``__`` nesting, case), then merged over the file and validated as one tree:
:func:`load_settings` validates once and raises a :class:`~farsight.errors.ConfigError` listing
every problem with its key path, value and fix.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from farsight.errors import ConfigError, ConfigProblem
from farsight.linear_regex import PatternError, compile_linear
from farsight.metrics import BY_NAME

ENV_PREFIX = "FARSIGHT__"
DATA_DIR_ENV = "FARSIGHT_DATA_DIR"


class Section(BaseModel):
    """Base of every settings section: strict keys, frozen after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class BrokerTlsSettings(Section):
    """``broker.tls``: TLS from the platform's MQTT clients to the broker (port 8883 by custom).

    ``farsight pki`` makes a private CA, the broker's certificate and client certificates.
    """

    enabled: bool = Field(
        False,
        title="TLS",
        description="Connect to the broker over TLS; set broker.port to its TLS listener (8883).",
    )
    ca_file: Path | None = Field(
        None,
        title="CA file",
        description="PEM bundle of the authorities that sign the broker's certificate (the ca.crt "
        "of `farsight pki init-ca`); none trusts the system's store.",
    )
    cert_file: Path | None = Field(
        None,
        title="Client certificate",
        description="PEM client certificate, for a broker that requires one; its subject CN is "
        "the client's identity (`farsight pki client ID`).",
    )
    key_file: Path | None = Field(
        None,
        title="Client key",
        description="PEM private key of cert_file, unencrypted, readable by this user only.",
    )
    min_version: Literal["1.2", "1.3"] = Field(
        "1.2",
        title="Lowest TLS version",
        description="Oldest TLS version the clients accept; 1.0 and 1.1 are never offered.",
    )
    insecure_skip_hostname_check: bool = Field(
        False,
        title="Skip the host name check (insecure)",
        description="Accept a broker certificate issued for another host name: anyone holding a "
        "certificate of the same CA can then pose as the broker. Test benches only.",
    )

    @field_validator("key_file")
    @classmethod
    def _key_with_certificate(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        cert = info.data.get("cert_file")
        if v is not None and cert is None:
            raise ValueError(
                "a key without a certificate: set broker.tls.cert_file to the certificate of this "
                "key, or remove key_file"
            )
        if v is None and cert is not None:
            raise ValueError(
                "the client certificate needs its private key: set broker.tls.key_file "
                "(`farsight pki client ID` writes both)"
            )
        return v

    @model_validator(mode="after")
    def _files_only_when_enabled(self) -> BrokerTlsSettings:
        given = [
            name for name in ("ca_file", "cert_file", "key_file") if getattr(self, name) is not None
        ]
        if given and not self.enabled:
            # The clients would connect in clear text while the file says TLS was meant.
            raise ValueError(
                f"{', '.join(given)} given but TLS is off: set broker.tls.enabled: true, or "
                "remove them"
            )
        return self


class BrokerSettings(Section):
    """Where the MQTT broker is, and which one the demo starts."""

    host: str = Field(
        "127.0.0.1",
        title="Broker host",
        description="Host name or address of the MQTT broker.",
        min_length=1,
        max_length=253,
    )
    port: int = Field(
        1883, title="Broker port", description="TCP port of the MQTT broker.", ge=1, le=65535
    )
    username: str | None = Field(
        None,
        title="Username",
        description="MQTT username; none for an anonymous broker.",
        max_length=256,
    )
    password: str | None = Field(
        None,
        title="Password",
        description="MQTT password; set it through FARSIGHT__BROKER__PASSWORD, never in a "
        "committed file.",
        max_length=256,
    )
    tls: BrokerTlsSettings = Field(
        default_factory=BrokerTlsSettings,
        title="TLS",
        description="TLS to the broker: CA, client certificate and key.",
    )
    protocol: Literal["3.1.1", "5"] = Field(
        "3.1.1",
        title="MQTT version",
        description="Protocol version the platform's clients speak. 3.1.1 is the default because "
        "paho decodes it about 15 % faster (no property objects per message); choose "
        "5 for shared subscriptions across ingest workers.",
    )
    keepalive_s: int = Field(
        30, title="Keepalive", description="MQTT keepalive interval in seconds.", ge=5, le=3600
    )
    embedded: Literal["auto", "mosquitto", "amqtt", "none"] = Field(
        "auto",
        title="Embedded broker",
        description="Broker the demo starts itself: 'auto' runs a mosquitto binary when one is "
        "installed, else amqtt; 'none' uses host and port as they are.",
    )
    allow_anonymous: bool = Field(
        False,
        title="Allow an open broker",
        description="Let `farsight ingest` run against a broker that accepts anonymous clients, "
        "or without broker credentials: anyone on its network could then publish readings for any "
        "site. For test benches only; the demo's authenticating broker needs no such thing.",
    )


class IngestTimeSettings(Section):
    """``ingest.time``: which measure times ingest believes, judged against each message's
    receive time.

    A device clock that runs ahead (or a forged ``DataTime``) would otherwise carry the rule
    engine's clock into the future: escalations fire at once and every later real reading looks
    late. A reading too old is stored but judged as history, not as live data.
    """

    max_future_skew_s: float = Field(
        300.0,
        title="Future skew",
        description="How far, in seconds, a reading's measure time may be ahead of the moment "
        "ingest received it; a message with a reading further ahead is refused as a dead letter "
        "(future_timestamp).",
        ge=0,
        le=86_400,
    )
    future_skew_by_kind: dict[str, float] = Field(
        {},
        title="Future skew per device kind",
        description="max_future_skew_s for the devices of a registry device kind (cems, "
        "air_quality, wim, ...) whose clocks are known to drift more, or less.",
    )
    backfill_horizon_s: float = Field(
        86_400.0,
        title="Backfill horizon",
        description="Readings measured longer ago than this, in seconds, before they were "
        "received are stored as backfill: kept, but never evaluated by the rules, so history "
        "arriving late cannot move the live rule state.",
        ge=60,
        le=366 * 86_400,
    )

    @field_validator("future_skew_by_kind")
    @classmethod
    def _skews_in_bounds(cls, v: dict[str, float]) -> dict[str, float]:
        for kind, skew in v.items():
            if not 0 <= skew <= 86_400:
                raise ValueError(f"{kind}: {skew!r} s must be between 0 and 86400")
        return v

    def skew_for(self, device_kind: str | None) -> float:
        """The allowed future skew, in seconds, of a device of ``device_kind``."""
        if device_kind is None:
            return self.max_future_skew_s
        return self.future_skew_by_kind.get(device_kind, self.max_future_skew_s)

    @property
    def widest_skew_s(self) -> float:
        """The largest skew any device may have: the bound of the engine's clock."""
        return max((self.max_future_skew_s, *self.future_skew_by_kind.values()))


class DeadLetterSettings(Section):
    """``ingest.dead_letters``: how long refused messages are kept, and how much of them."""

    max_age_days: float = Field(
        30.0,
        title="Retention age",
        description="Dead letters older than this many days are deleted (by ingest every "
        "every_s, and by `farsight deadletters prune`).",
        ge=0.01,
        le=3650,
    )
    max_total_mb: float = Field(
        512.0,
        title="Retention size",
        description="Most megabytes (MiB) of dead-letter payloads kept; the oldest go first.",
        ge=1,
        le=1_000_000,
    )
    keep_bytes: int = Field(
        64 * 1024,
        title="Kept payload bytes",
        description="A payload longer than this keeps only its first keep_bytes, with its "
        "original length and the sha256 of the whole. At least ingest.max_payload_bytes keeps "
        "every message ingest could admit replayable.",
        ge=256,
        le=16 * 1024 * 1024,
    )
    every_s: float = Field(
        3600.0,
        title="Retention period",
        description="Seconds between retention runs in `farsight ingest` (wall clock).",
        ge=10,
        le=86_400,
    )


OutOfRangePolicy = Literal["refuse", "flag"]


class IngestSettings(Section):
    """The MQTT consumer that decodes, stores and evaluates readings."""

    client_id: str = Field(
        "farsight-ingest",
        title="Client id",
        description="Stable MQTT client id; with a persistent session the broker queues messages "
        "for it while it is down. With broker credentials it must equal broker.username: the "
        "broker (use_username_as_clientid) files the session under the user name.",
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.-]+$",
    )
    topics: tuple[str, ...] = Field(
        ("fs/v1/+/+/+/reading", "fs/v1/+/+/+/hj212", "fs/v1/+/+/+/detection"),
        title="Subscriptions",
        description="Topic filters the consumer subscribes to at QoS 1.",
        min_length=1,
    )
    qos: Literal[0, 1] = Field(
        1, title="QoS", description="Subscription QoS; 1 is required for no-loss operation."
    )
    batch_max: int = Field(
        500,
        title="Batch size",
        description="Most messages written in one database transaction.",
        ge=1,
        le=100_000,
    )
    batch_wait_ms: int = Field(
        20,
        title="Batch wait",
        description="Longest wait in milliseconds for a batch to fill before it is written.",
        ge=0,
        le=10_000,
    )
    unknown_site: Literal["accept", "dead-letter"] = Field(
        "dead-letter",
        title="Unknown site policy",
        description="What to do with a reading from a site missing from the registry.",
    )
    session_expiry_s: int = Field(
        7 * 24 * 3600,
        title="Session expiry",
        description="MQTT 5 session expiry: how long the broker keeps the consumer's queue while "
        "it is away.",
        ge=0,
        le=2**32 - 1,
    )
    time: IngestTimeSettings = Field(
        default_factory=IngestTimeSettings,
        title="Measure time checks",
        description="Future skew and backfill horizon of readings' measure times.",
    )
    max_payload_bytes: int = Field(
        64 * 1024,
        title="Payload cap",
        description="Largest message payload decoded, in bytes; a larger one is refused "
        "(too_large) before decoding. The HJ 212 codec refuses frames over 10 KiB and the JSON "
        "codecs payloads over 256 KiB in any case.",
        ge=1024,
        le=256 * 1024,
    )
    max_metrics: int = Field(
        300,
        title="Metrics per message",
        description="Most readings one message may carry; a message with more is refused whole "
        "(too_many_metrics). An hourly HJ 212 frame of 20 pollutants with Avg, Min, Max, Cou "
        "and the three Zs values carries 140.",
        ge=1,
        le=10_000,
    )
    out_of_range: OutOfRangePolicy = Field(
        "refuse",
        title="Out-of-range values",
        description="A value outside its metric's physical range (the catalogue's bounds): "
        "refuse it (dead letter out_of_range; the rest of the message is stored) or store it "
        "with data flag D (fault). Refuse by default: such a value measures nothing, and a "
        "stored one would still skew charts' averages and latest values, which do not read "
        "flags.",
    )
    out_of_range_metrics: dict[str, OutOfRangePolicy] = Field(
        default_factory=dict,
        title="Out-of-range policy per metric",
        description="Overrides of out_of_range by catalogue metric name, e.g. {noise: flag}.",
    )
    dead_letters: DeadLetterSettings = Field(
        default_factory=DeadLetterSettings,
        title="Dead letters",
        description="Retention of refused messages.",
    )

    @field_validator("out_of_range_metrics")
    @classmethod
    def _catalogue_metrics(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(name for name in v if name not in BY_NAME)
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} not in the metric catalogue (farsight/metrics.py); only "
                "catalogue metrics have physical ranges"
            )
        return v


class RulesSettings(Section):
    """Which rule files the engine loads."""

    files: tuple[Path, ...] = Field(
        (),
        title="Rule files",
        description="YAML rule files; empty loads the built-in default rule pack.",
    )
    default_pack: bool = Field(
        True,
        title="Default pack",
        description="Load the built-in default rule pack in addition to the listed files.",
    )
    tick_s: float = Field(
        5.0,
        title="Clock tick",
        description="How often, in seconds, the engine's clock moves for rules that watch for "
        "silence.",
        gt=0,
        le=3600,
    )


class RiskSettings(Section):
    """The risk score that orders the queue: a product of factors, each explained per alert."""

    severity: dict[Literal["info", "warning", "major", "critical"], float] = Field(
        {"info": 1.0, "warning": 2.0, "major": 4.0, "critical": 8.0},
        title="Severity weights",
        description="Base score per severity.",
    )
    credit: dict[Literal["A", "B", "C", "D"], float] = Field(
        {"A": 0.8, "B": 1.0, "C": 1.3, "D": 1.6},
        title="Credit-grade factors",
        description="Multiplier per operator credit grade (differentiated supervision: D is "
        "watched most closely).",
    )
    repeat: float = Field(
        0.25,
        title="Repeat factor",
        description="Added to the multiplier per earlier alert of the same operator (repeat "
        "offences).",
        ge=0,
        le=10,
    )
    repeat_cap: int = Field(
        8, title="Repeat cap", description="Most earlier alerts counted.", ge=0, le=1000
    )
    evidence: float = Field(
        0.1,
        title="Evidence factor",
        description="Added to the multiplier per evidence file.",
        ge=0,
        le=10,
    )
    age_per_hour: float = Field(
        0.05,
        title="Age factor",
        description="Added to the multiplier per hour the alert waits.",
        ge=0,
        le=10,
    )
    age_cap: float = Field(
        2.0, title="Age cap", description="Largest addition from age.", ge=0, le=100
    )


_SEVERITY = Literal["info", "warning", "major", "critical"]


class UpstreamSettings(Section):
    """Push of every alert and handling step to the provincial supervision hub (transactional
    outbox)."""

    url: str | None = Field(
        None,
        title="Endpoint",
        description="HTTP(S) endpoint of the provincial hub; empty: nothing is pushed "
        "(events still queue in the outbox, so enabling it later sends the backlog).",
        pattern=r"^https?://\S+$",
        max_length=2000,
    )
    token_env: str = Field(
        "FARSIGHT_UPSTREAM_TOKEN",
        title="Token variable",
        description="Environment variable holding the bearer "
        "token for the endpoint (never written in this file).",
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        max_length=100,
    )
    source: str = Field(
        "farsight",
        title="Source id",
        description="This installation's id: prefixes idempotency keys and names the sender.",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
    )
    timeout_s: float = Field(
        10.0,
        title="Timeout",
        description="Seconds to wait for the endpoint's answer before a retry.",
        gt=0,
        le=300,
    )
    max_attempts: int = Field(
        10,
        title="Attempts",
        description="Attempts before an event is dead-lettered (`farsight outbox redrive` sends "
        "it again).",
        ge=1,
        le=1000,
    )
    backoff_base_s: float = Field(
        1.0,
        title="Backoff base",
        description="First retry waits up to this many seconds (full jitter), doubling per "
        "attempt.",
        gt=0,
        le=3600,
    )
    backoff_cap_s: float = Field(
        600.0,
        title="Backoff cap",
        description="Longest wait between attempts, in seconds.",
        gt=0,
        le=86400,
    )
    batch: int = Field(
        50, title="Batch", description="Events one worker claims at a time.", ge=1, le=10_000
    )
    lease_s: float = Field(
        120.0,
        title="Lease",
        description="Seconds a claim lasts; a worker that dies releases its events when it ends.",
        gt=0,
        le=86400,
    )
    poll_s: float = Field(
        1.0,
        title="Poll",
        description="Seconds an idle worker waits before looking for new events.",
        gt=0,
        le=3600,
    )
    workers: int = Field(
        1, title="Workers", description="Sender threads per hub process.", ge=1, le=64
    )


class EscalationSettings(Section):
    """Deadlines of the handling steps per severity; an overdue alert is escalated on the engine's
    clock."""

    ack_within_min: dict[_SEVERITY, float] = Field(
        {"critical": 15, "major": 60, "warning": 240, "info": 1440},
        title="Acknowledge within",
        description="Minutes from raising to acknowledgement, per severity.",
    )
    verify_within_min: dict[_SEVERITY, float] = Field(
        {"critical": 1440, "major": 2880, "warning": 10080, "info": 20160},
        title="Verify within",
        description="Minutes from dispatch to the verification finding, per severity.",
    )
    repeat_min: float = Field(
        60.0,
        title="Re-escalate",
        description="Minutes after an escalation before an alert still overdue is escalated again.",
        gt=0,
        le=100_000,
    )


class InhibitRule(Section):
    """While a source alert is active, target alerts with equal values of the ``equal`` labels are
    muted (as in Alertmanager)."""

    source: dict[str, str] = Field(
        ...,
        title="Source matchers",
        description="Label matchers of the inhibiting alert (label: value, or label: '~regex'"
        " in RE2 syntax, at most 256 characters: no backreferences or lookaround).",
    )
    target: dict[str, str] = Field(
        ..., title="Target matchers", description="Label matchers of the alerts it mutes."
    )
    equal: tuple[str, ...] = Field(
        ("site",),
        title="Equal labels",
        description="Labels that must have the same value on source and target.",
    )

    @field_validator("source", "target")
    @classmethod
    def _patterns_compile(cls, v: dict[str, str]) -> dict[str, str]:
        # Compiled here too, so that `farsight check-config` names the key path of a pattern
        # RE2 refuses; alerts.inhibit compiles them again for use.
        for label, value in v.items():
            if value.startswith("~"):
                try:
                    compile_linear(value[1:])
                except PatternError as exc:
                    shown = value if len(value) <= 60 else value[:60] + "..."
                    raise ValueError(f"matcher {label!r}: {shown!r} is refused: {exc}") from None
        return v


class AlertsSettings(Section):
    """The risk queue."""

    risk: RiskSettings = Field(
        default_factory=RiskSettings, title="Risk score", description="Weights of the risk score."
    )
    upstream: UpstreamSettings = Field(
        default_factory=UpstreamSettings,
        title="Upstream push",
        description="Provincial hub endpoint and retry policy.",
    )
    escalation: EscalationSettings = Field(
        default_factory=EscalationSettings,
        title="Escalation",
        description="Handling deadlines per severity.",
    )
    inhibit: tuple[InhibitRule, ...] = Field(
        # The whole-site verdict of rule site-offline (rules/kinds/missing.py) carries device ""
        # (a site with two or more devices); its per-device alerts and every sensor alert carry
        # a device. So the target "any device" mutes them and never the site alert itself.
        (
            InhibitRule(
                source={"rule_id": "site-offline", "device": ""},
                target={"device": "~.+"},
                equal=("site",),
            ),
        ),
        title="Inhibition rules",
        description="A site offline mutes that site's device and sensor alerts (default).",
    )
    anchor_every_s: float = Field(
        300.0,
        title="Anchor interval",
        description="Seconds between signed anchors of the audit chain, made by `farsight ingest`"
        " and sent upstream through the outbox (needs anchor_key_file); 0: none.",
        ge=0,
        le=86400,
    )
    anchor_key_file: Path | None = Field(
        None,
        title="Anchor signing key",
        description="Ed25519 private key (PEM, mode 0600, made by `farsight audit keygen`) that"
        " signs the audit chain's anchors; keep it outside data_dir and the database's backups.",
    )
    anchor_public_key_file: Path | None = Field(
        None,
        title="Anchor public key",
        description="The public key `farsight audit verify` checks anchors with (the .pub"
        " `farsight audit keygen` writes next to the private key).",
    )


class HubSettings(Section):
    """The FastAPI hub: API, live stream and dashboard."""

    host: str = Field(
        "127.0.0.1",
        title="Listen host",
        description="Address the hub listens on.",
        min_length=1,
        max_length=253,
    )
    port: int = Field(
        8000, title="Listen port", description="TCP port the hub listens on.", ge=1, le=65535
    )
    stream_poll_ms: int = Field(
        500,
        title="Stream poll",
        description="How often the live stream looks for new readings and alert changes, in "
        "milliseconds.",
        ge=50,
        le=60_000,
    )
    page_max: int = Field(
        1000,
        title="Page size limit",
        description="Largest page the API returns.",
        ge=10,
        le=100_000,
    )
    token_ttl_h: int = Field(
        720,
        title="Token lifetime",
        description="Hours an API token stays valid when `farsight token issue` gets no --ttl "
        "(default 30 days: a month's work, then a new token).",
        ge=1,
        le=8784,
    )
    session_ttl_h: int = Field(
        12,
        title="Session lifetime",
        description="Hours a browser session (POST /api/session) lasts, at most as long as its "
        "token.",
        ge=1,
        le=168,
    )
    auth_failures: int = Field(
        10,
        title="Failed sign-ins before lockout",
        description="Refused tokens from one client address, or of one user, within "
        "auth_window_s that lock it out for auth_lockout_s (429 with Retry-After).",
        ge=1,
        le=1000,
    )
    auth_window_s: int = Field(
        300,
        title="Failure window",
        description="Seconds over which failed sign-ins are counted.",
        ge=1,
        le=86_400,
    )
    auth_lockout_s: int = Field(
        300,
        title="Lockout",
        description="Seconds a client address or user is refused after too many failures.",
        ge=1,
        le=86_400,
    )
    auth_tracked_max: int = Field(
        10_000,
        title="Tracked failures",
        description="Most client addresses and users whose failures are remembered (in memory); "
        "past that the oldest are forgotten.",
        ge=100,
        le=1_000_000,
    )
    streams_per_token: int = Field(
        8,
        title="Live streams per token",
        description="Open /api/stream connections one token (with its sessions) may hold; one "
        "more is refused with 429.",
        ge=1,
        le=1000,
    )
    tls_certfile: Path | None = Field(
        None,
        title="TLS certificate",
        description="PEM certificate (chain) the hub serves HTTPS with; with tls_keyfile. "
        "Unset: plain HTTP (put a TLS proxy in front).",
    )
    tls_keyfile: Path | None = Field(
        None,
        title="TLS key",
        description="PEM private key of tls_certfile.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        title="Trusted proxies",
        description="Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed: the client address for sign-in limits, https for the "
        "Secure cookie and HSTS. Empty: none, the peer is the client.",
        max_length=100,
    )

    @field_validator("tls_keyfile")
    @classmethod
    def _tls_pair(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if (v is None) != (info.data.get("tls_certfile") is None):
            raise ValueError("tls_certfile and tls_keyfile are set together, or neither")
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for entry in v:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (e.g. 10.0.0.5, 10.0.0.0/24)"
                ) from None
        return v

    @property
    def tls(self) -> bool:
        """True when the hub serves HTTPS itself."""
        return self.tls_certfile is not None


class VideoSettings(Section):
    """``video``: live cameras (``farsight video run`` and the demo's simulated cameras)."""

    enabled: bool = Field(
        True,
        title="Enabled",
        description="Run the demo's simulated cameras and their analysers in `farsight demo`.",
    )
    cameras_dir: Path | None = Field(
        None,
        title="Camera folder",
        description="Folder of per-camera YAML files (one camera a file), watched and "
        "hot-reloaded; none: the demo's simulated cameras.",
    )
    workers: int = Field(
        1,
        title="Workers",
        description="Analysis processes; cameras are spread over them (one OpenCV thread each).",
        ge=1,
        le=64,
    )
    resend_s: float = Field(
        5.0,
        title="Re-send interval",
        description="While a finding lasts it is published again this often, so rules that need "
        "it held (`for: 2m`) see it.",
        ge=0.5,
        le=600,
    )
    clear_after_s: float = Field(
        3.0,
        title="Clear after",
        description="A finding not seen for this many seconds is published as cleared.",
        ge=0.5,
        le=600,
    )


class CameraSimulatorSettings(Section):
    """``simulator.cameras``: simulated cameras served as MJPEG over HTTP in the demo."""

    enabled: bool = Field(
        True,
        title="Enabled",
        description="Serve simulated cameras for the sites with cameras in the registry.",
    )
    width: int = Field(640, title="Width", description="Frame width in pixels.", ge=64, le=3840)
    height: int = Field(360, title="Height", description="Frame height in pixels.", ge=64, le=2160)
    fps: float = Field(
        2.0,
        title="Frame rate",
        description="Frames per second each simulated camera serves.",
        gt=0,
        le=30,
    )
    cycle_s: float = Field(
        600.0,
        title="Scenario cycle",
        description="Seconds after which each camera's scripted events repeat.",
        ge=60,
        le=86400,
    )
    speed: float = Field(
        1.0,
        title="Playback speed",
        description="Scenario seconds played per wall-clock second (1: real time). Frames carry "
        "their scenario time, which analysers and rules follow, so above 1 the camera findings "
        "run ahead of the wall clock: keep (speed - 1) x run time within "
        "ingest.time.max_future_skew_s.",
        ge=1,
        le=60,
    )


class SimulatorSettings(Section):
    """The simulated devices of the demo sites."""

    enabled: bool = Field(
        True, title="Enabled", description="Run the simulators in `farsight demo`."
    )
    seed: int = Field(
        2026, title="Seed", description="Random seed; the same seed gives the same readings.", ge=0
    )
    interval_s: float = Field(
        5.0,
        title="Interval",
        description="Wall-clock seconds between two rounds of readings.",
        gt=0,
        le=3600,
    )
    speedup: float = Field(
        1.0,
        title="Time speed-up",
        description="Simulated seconds per wall-clock second; above 1 the simulated clock runs "
        "ahead of the wall clock.",
        ge=1,
        le=100_000,
    )
    backfill_min: float = Field(
        120.0,
        title="Backfill",
        description="Minutes of simulated history published at start at one-minute steps, so the "
        "demo opens with recent data and the scenario's first violations; the "
        "scenario then plays again live.",
        ge=0,
        le=7 * 24 * 60,
    )
    scenario: str = Field(
        "demo",
        title="Scenario",
        description="Scripted scenario with violations and their ground truth.",
        min_length=1,
        max_length=64,
    )
    cameras: CameraSimulatorSettings = Field(
        default_factory=CameraSimulatorSettings,
        title="Cameras",
        description="Simulated cameras (MJPEG over HTTP).",
    )


class ConfirmationSettings(Section):
    """``remote_sensing.confirmation``: when a change tracked over revisits is confirmed.

    The defaults are the built-in policy, ``remote_sensing.revisits.DEFAULT_POLICY`` (chosen there
    from ``benchmarks/rs_confirmation.py``'s figures).
    """

    rule: Literal["first_later", "k_of_n"] = Field(
        "k_of_n",
        title="Rule",
        description="first_later: the first sighting in a later scene confirms a change, which "
        "never expires. k_of_n: k of the next n looks at its area (later scenes that observed it "
        "free of cloud and shadow) must see it; after n looks without k sightings it expires and "
        "its alert is resolved.",
    )
    k: int = Field(
        1,
        title="Sightings (k)",
        description="Later sightings that confirm a change (k_of_n only).",
        ge=1,
        le=16,
    )
    n: int = Field(
        3,
        title="Looks (n)",
        description="Later looks at its area a change waits for k sightings in (k_of_n only); at "
        "least k.",
        ge=1,
        le=16,
    )

    @field_validator("n")
    @classmethod
    def _n_at_least_k(cls, v: int, info: ValidationInfo) -> int:
        k = info.data.get("k")
        if k is not None and v < k:
            raise ValueError(
                f"n ({v}) is fewer looks than the sightings asked for (k {k}): raise n or lower k"
            )
        return v


class RemoteSensingSettings(Section):
    """``remote_sensing``: satellite change detection (`farsight rs watch`)."""

    confirmation: ConfirmationSettings = Field(
        default_factory=ConfirmationSettings,
        title="Confirmation",
        description="When a change tracked over revisits is confirmed or expires; `rs watch "
        "--confirm` overrides it.",
    )


class RegistrySettings(Section):
    """The site registry."""

    sites_file: Path | None = Field(
        None,
        title="Sites file",
        description="YAML site registry; none loads the built-in demo registry.",
    )
    departments: tuple[str, ...] = Field(
        ("env", "transport"),
        title="Departments",
        description="Department codes that sites and users may belong to.",
        min_length=1,
    )


class EdgeHubSettings(Section):
    """``edge``: how the hub receives store-and-forward batches from site gateways."""

    keys_file: Path | None = Field(
        None,
        title="Gateway keys file",
        description="YAML mapping each gateway id to its batch HMAC key in hex ({gw-1: 3f9a...}); "
        "none: gateway batches are not consumed. Keep it out of the repository, "
        "readable by the hub only.",
    )
    topic: str = Field(
        "fs/v1/gw/+/batch",
        title="Batch subscription",
        description="Topic filter of gateway batches, added to the ingest subscriptions when "
        "keys_file is set.",
        min_length=1,
        max_length=256,
    )
    max_messages: int = Field(
        10_000,
        title="Messages per batch",
        description="Most original messages one batch may carry; a larger batch is dead-lettered.",
        ge=1,
        le=1_000_000,
    )
    keep_sequences: int = Field(
        100_000,
        title="Sequence history",
        description="Accepted batch sequence numbers remembered per gateway to tell a redelivery "
        "from a replay.",
        ge=100,
        le=10_000_000,
    )
    sites: dict[str, str] = Field(
        default_factory=dict,
        title="Gateway sites",
        description="Site id of each gateway ({gw-1: yc-stack-1}), for the department and owner "
        "of its health alerts; the registry's gateways: section wins where it names the gateway; "
        "gateways listed in neither are their own site.",
    )
    silent_after_s: float = Field(
        120.0,
        title="Silent after",
        description="A gateway with no heartbeat for this many seconds raises gateway-silent.",
        gt=0,
        le=86_400,
    )
    backlog_age_s: float = Field(
        600.0,
        title="Backlog age",
        description="A gateway whose oldest buffered message is older than this raises "
        "gateway-backlog.",
        gt=0,
        le=30 * 86_400,
    )
    backlog_beats: int = Field(
        5,
        title="Backlog growth",
        description="A buffer that grew on this many heartbeats in a row raises gateway-backlog.",
        ge=2,
        le=1000,
    )


class CredentialSettings(Section):
    """``credentials``: broker identities of devices, gateways and services (`farsight devices`)."""

    store_file: Path | None = Field(
        None,
        title="Credential store",
        description="JSON file of the identities' password hashes (mode 0600), kept out of the "
        "repository; none: <data_dir>/trust/credentials.json.",
    )
    password_file: Path | None = Field(
        None,
        title="Broker password file",
        description="mosquitto password_file that `farsight devices sync` writes; none: "
        "<data_dir>/trust/mosquitto.passwd.",
    )
    acl_file: Path | None = Field(
        None,
        title="Broker ACL file",
        description="mosquitto acl_file that `farsight devices sync` writes; none: "
        "<data_dir>/trust/mosquitto.acl.",
    )
    broker_pid_file: Path | None = Field(
        None,
        title="Broker pid file",
        description="mosquitto's pid_file: `farsight devices sync` sends that process SIGHUP so "
        "it reads the new files; none: pass --pid or reload the broker yourself.",
    )


class LoggingSettings(Section):
    """Log level."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", title="Level", description="Lowest level logged."
    )


class Settings(Section):
    """The whole configuration of one Farsight installation."""

    data_dir: Path = Field(
        Path("var"),
        title="Data directory",
        description="Holds the SQLite database, evidence files and dead letters "
        "(FARSIGHT_DATA_DIR overrides).",
    )
    broker: BrokerSettings = Field(
        default_factory=BrokerSettings, title="Broker", description="MQTT broker."
    )
    ingest: IngestSettings = Field(
        default_factory=IngestSettings, title="Ingest", description="MQTT consumer."
    )
    rules: RulesSettings = Field(
        default_factory=RulesSettings, title="Rules", description="Rule engine."
    )
    alerts: AlertsSettings = Field(
        default_factory=AlertsSettings, title="Alerts", description="Risk queue."
    )
    database_url: str | None = Field(
        None,
        title="Database URL",
        description="PostgreSQL for production (postgresql://user@host:5432/farsight); empty: the "
        "embedded SQLite file "
        "farsight.db in data_dir. The password comes from PGPASSWORD or ~/.pgpass, never from "
        "this file.",
        pattern=r"^postgres(ql)?://[^:@/\s]+(@[^/\s]+)?/[A-Za-z0-9_.-]+(\?\S*)?$",
        max_length=500,
    )
    hub: HubSettings = Field(
        default_factory=HubSettings, title="Hub", description="API and dashboard."
    )
    simulator: SimulatorSettings = Field(
        default_factory=SimulatorSettings, title="Simulator", description="Demo simulators."
    )
    video: VideoSettings = Field(
        default_factory=VideoSettings,
        title="Video",
        description="Live cameras and their analysers.",
    )
    registry: RegistrySettings = Field(
        default_factory=RegistrySettings, title="Registry", description="Site registry."
    )
    remote_sensing: RemoteSensingSettings = Field(
        default_factory=RemoteSensingSettings,
        title="Remote sensing",
        description="Satellite change detection over revisits.",
    )
    logging: LoggingSettings = Field(
        default_factory=LoggingSettings, title="Logging", description="Logging."
    )
    edge: EdgeHubSettings = Field(
        default_factory=EdgeHubSettings,
        title="Edge gateways",
        description="Batches from site gateways: keys and subscription.",
    )
    credentials: CredentialSettings = Field(
        default_factory=CredentialSettings,
        title="Broker credentials",
        description="Credential store and the broker files made from it.",
    )

    @field_validator("data_dir")
    @classmethod
    def _data_dir_not_empty(cls, v: Path) -> Path:
        if str(v).strip() == "":
            raise ValueError("must not be empty")
        return v

    @property
    def db_path(self) -> Path:
        """The embedded SQLite database."""
        return self.data_dir / "farsight.db"

    @property
    def evidence_dir(self) -> Path:
        """The content-addressed evidence store (:mod:`farsight.evidence`)."""
        return self.data_dir / "evidence"

    @property
    def trust_dir(self) -> Path:
        """Default folder of the credential store and the broker's password and ACL files."""
        return self.data_dir / "trust"

    @property
    def credential_store_path(self) -> Path:
        return self.credentials.store_file or self.trust_dir / "credentials.json"

    @property
    def broker_password_path(self) -> Path:
        return self.credentials.password_file or self.trust_dir / "mosquitto.passwd"

    @property
    def broker_acl_path(self) -> Path:
        return self.credentials.acl_file or self.trust_dir / "mosquitto.acl"

    @property
    def database(self) -> Path | str:
        """Where the stores keep their tables: the PostgreSQL URL, else the SQLite file."""
        return self.database_url or self.db_path


class _EnvironmentShape(Settings, BaseSettings):
    """The settings tree as pydantic-settings sees it; only read for its fields, never built."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", case_sensitive=False
    )


class _EnvironmentSource(EnvSettingsSource):
    """pydantic-settings' reader of ``FARSIGHT__SECTION__KEY``, on a given environment.

    Scalars stay strings and pydantic converts them by the field's type (so a password ``0123``
    stays a string); lists and mappings are read as YAML flow collections (``[a/b, c/d]``), the
    syntax of the settings file, rather than the library's JSON.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(_EnvironmentShape, env_parse_none_str="null")

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # The library's own providers (dotenv, secrets) override this hook to read elsewhere; here
        # it reads the mapping load_settings was given, so tests and callers need not touch
        # os.environ.
        return parse_env_vars(self._environ, False, False, self.env_parse_none_str)

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value  # pydantic then reports the wrong type with the key path


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn ``FARSIGHT__SECTION__KEY=value`` variables into a nested dict (keys lower-cased).

    ``FARSIGHT_DATA_DIR`` sets ``data_dir`` unless ``FARSIGHT__DATA_DIR`` does.
    """
    tree = _EnvironmentSource(environ)()
    # The library skips variables that name no section, as the environment is shared; a
    # FARSIGHT__ prefix is ours alone, so a misspelt section is kept and refused as unknown.
    for name, raw in environ.items():
        head = name[len(ENV_PREFIX) :].split("__", 1)[0].lower()
        if name.upper().startswith(ENV_PREFIX) and head and head not in Settings.model_fields:
            tree.setdefault(head, {})[name] = raw
    if environ.get(DATA_DIR_ENV):
        tree.setdefault("data_dir", environ[DATA_DIR_ENV])
    return tree


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _lookup(tree: Any, loc: tuple[Any, ...]) -> Any:
    node = tree
    for k in loc:
        if (
            isinstance(node, dict)
            and k in node
            or isinstance(node, (list, tuple))
            and isinstance(k, int)
            and k < len(node)
        ):
            node = node[k]
        else:
            return None
    return node


_FIXES = {
    "extra_forbidden": "unknown key; remove it or check its spelling against `farsight "
    "check-config --schema`",
    "missing": "required; add it",
}


def validation_problems(exc: ValidationError, raw: Any, prefix: str = "") -> list[ConfigProblem]:
    """Convert a pydantic error into problems naming the key path, the value and the fix."""
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in loc)
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        value = err.get("input") if err["type"] != "missing" else None
        if err["type"] == "extra_forbidden":
            value = _lookup(raw, loc)
        msg = err["msg"]
        fix = _FIXES.get(err["type"])
        if fix:
            msg = f"{msg}: {fix}"
        problems.append(ConfigProblem(path=path, value=value, message=msg))
    return problems


def read_yaml(path: Path) -> Any:
    """Read a YAML file, converting I/O and syntax errors into :class:`ConfigError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", source=str(path)) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"YAML syntax error{where}: {getattr(exc, 'problem', exc)}", source=str(path)
        ) from None


def load_settings(
    path: Path | str | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Load settings from an optional YAML file plus environment overrides.

    Raises
    ------
    ConfigError
        With every problem found, each naming its key path, value and fix.
    """
    environ = os.environ if environ is None else environ
    raw: Any = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        raw = read_yaml(Path(path))
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(
                [
                    ConfigProblem(
                        "", type(raw).__name__, "the top level must be a mapping of sections"
                    )
                ],
                source=source,
            )
    merged = _merge(raw, env_overrides(environ))
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, merged), source=source) from None
