"""The gateway's configuration (``gateway.yaml``): one pydantic model tree, validated once.

Every field has a default, bounds, a title and a description; unknown keys are refused, and
:func:`load_gateway_config` raises a :class:`~farsight.errors.ConfigError` naming every
problem's key path, value and fix. The hub may push a newer version of the same tree on the
retained topic ``fs/v1/gw/{gateway}/config`` (see :mod:`edge.remote_config`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from farsight.errors import ConfigError, ConfigProblem
from farsight.settings import read_yaml, validation_problems

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class Section(BaseModel):
    """Base of every gateway section: strict keys, frozen after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class TlsSettings(Section):
    """TLS towards the central broker; a client certificate may replace username/password."""

    enabled: bool = Field(False, title="TLS", description="Connect to the central broker over TLS.")
    ca_file: Path | None = Field(
        None,
        title="CA file",
        description="PEM bundle of the authorities that sign the broker's certificate; none uses"
        " the system store.",
    )
    cert_file: Path | None = Field(
        None,
        title="Client certificate",
        description="PEM client certificate, for brokers that authenticate gateways by"
        " certificate.",
    )
    key_file: Path | None = Field(
        None, title="Client key", description="PEM private key of the client certificate."
    )
    insecure: bool = Field(
        False,
        title="Skip host name check",
        description="Do not check the broker's host name against its certificate (test benches"
        " only).",
    )

    @model_validator(mode="after")
    def _cert_and_key(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: give both or neither")
        return self


class UplinkSettings(Section):
    """The central broker the gateway forwards its buffer to."""

    host: str = Field(
        "127.0.0.1",
        title="Central broker host",
        description="Host name or address of the central MQTT broker.",
        min_length=1,
        max_length=253,
    )
    port: int = Field(
        1883,
        title="Central broker port",
        description="TCP port of the central broker (8883 is usual with TLS).",
        ge=1,
        le=65535,
    )
    username: str | None = Field(
        None,
        title="Username",
        description="MQTT username; none for a broker that authenticates by certificate or not at"
        " all.",
        max_length=256,
    )
    password: str | None = Field(
        None,
        title="Password",
        description="MQTT password; prefer the FARSIGHT_EDGE_PASSWORD environment variable to a"
        " file.",
        max_length=256,
    )
    tls: TlsSettings = Field(
        default_factory=TlsSettings, title="TLS", description="TLS and client certificate."
    )
    client_id: str | None = Field(
        None,
        title="Client id",
        description="MQTT client id on the central broker; none uses 'farsight-gw-{gateway_id}'.",
        max_length=128,
        pattern=r"^[A-Za-z0-9_.-]+$",
    )
    protocol: Literal["3.1.1", "5"] = Field(
        "3.1.1", title="MQTT version", description="Protocol version spoken to the central broker."
    )
    keepalive_s: int = Field(
        15,
        title="Keepalive",
        description="MQTT keepalive in seconds: how soon a dead 4G link is noticed.",
        ge=5,
        le=3600,
    )
    batch_max: int = Field(
        500,
        title="Batch size",
        description="Most messages in one forwarded batch.",
        ge=1,
        le=10_000,
    )
    batch_max_bytes: int = Field(
        256 * 1024,
        title="Batch bytes",
        description="Largest batch payload in bytes (the broker's max_packet_size is 1 MiB).",
        ge=1024,
        le=1024 * 1024,
    )
    batch_wait_ms: int = Field(
        50,
        title="Batch wait",
        description="Longest wait, in milliseconds, for a partial batch to fill while the link is"
        " idle.",
        ge=0,
        le=60_000,
    )
    inflight: int = Field(
        8,
        title="In-flight window",
        description="Batches published and not yet acknowledged (PUBACK) at once.",
        ge=1,
        le=1000,
    )
    backfill_after_s: float = Field(
        10.0,
        title="Back-fill age",
        description="A message older than this when forwarded, or received while the uplink was"
        " down, is marked back-filled (late data for the hub and the rules).",
        ge=0,
        le=86_400,
    )
    hmac_key_file: Path | None = Field(
        None,
        title="HMAC key file",
        description="File holding this gateway's batch key as hex (at least 16 bytes);"
        " FARSIGHT_EDGE_KEY overrides it. Never commit it.",
    )
    reconnect_max_s: float = Field(
        10.0,
        title="Reconnect backoff cap",
        description="Longest wait between two connection attempts, in seconds.",
        gt=0,
        le=600,
    )


class BufferSettings(Section):
    """The durable store-and-forward buffer (SQLite, WAL)."""

    path: Path | None = Field(
        None,
        title="Buffer file",
        description="SQLite file of the buffer; none puts buffer.db in data_dir.",
    )
    max_bytes: int = Field(
        1024**3,
        title="Size bound",
        description="Most bytes of topics and payloads held; past it the policy applies.",
        ge=1024,
        le=1024**4,
    )
    max_age_s: float = Field(
        30 * 86_400,
        title="Age bound",
        description="Messages older than this are expired (counted as lost).",
        gt=0,
        le=365 * 86_400,
    )
    policy: Literal["refuse", "drop_oldest"] = Field(
        "refuse",
        title="Full policy",
        description="When full: 'refuse' new data and raise an alert, or 'drop_oldest' unsent"
        " data; either way the loss is counted and reported to the hub.",
    )
    commit_interval_ms: float = Field(
        2.0,
        title="Group commit window",
        description="How long the writer waits for more appends before one fsync commits them all.",
        ge=0,
        le=1000,
    )
    synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        title="Synchronous",
        description="FULL fsyncs every group commit (survives power loss); NORMAL only survives a"
        " process crash.",
    )


class MqttLocalSettings(Section):
    """Collector for devices that publish to the site's local broker."""

    enabled: bool = Field(False, title="Enabled", description="Subscribe to the local broker.")
    host: str = Field(
        "127.0.0.1",
        title="Local broker host",
        description="Host of the site's MQTT broker.",
        min_length=1,
        max_length=253,
    )
    port: int = Field(
        1883,
        title="Local broker port",
        description="Port of the site's MQTT broker.",
        ge=1,
        le=65535,
    )
    username: str | None = Field(
        None, title="Username", description="MQTT username on the local broker.", max_length=256
    )
    password: str | None = Field(
        None, title="Password", description="MQTT password on the local broker.", max_length=256
    )
    topics: tuple[str, ...] = Field(
        ("fs/v1/+/+/+/reading", "fs/v1/+/+/+/hj212", "fs/v1/+/+/+/detection"),
        title="Subscriptions",
        description="Topic filters collected at QoS 1.",
        min_length=1,
    )
    client_id: str | None = Field(
        None,
        title="Client id",
        description="Stable client id on the local broker (persistent session); none uses"
        " 'farsight-gw-{gateway_id}-local'.",
        max_length=128,
        pattern=r"^[A-Za-z0-9_.-]+$",
    )


class Hj212Device(Section):
    """Where the frames of one data logger (by MN) are filed."""

    dept: str = Field(
        ..., title="Department", description="Department code in the topic.", pattern=_ID
    )
    site: str = Field(..., title="Site", description="Site id in the topic.", pattern=_ID)
    device: str = Field(..., title="Device", description="Device id in the topic.", pattern=_ID)


class Hj212TcpSettings(Section):
    """Collector for data loggers that connect as TCP clients and push HJ 212-2017 frames."""

    enabled: bool = Field(False, title="Enabled", description="Listen for data loggers.")
    host: str = Field(
        "0.0.0.0",
        title="Listen host",
        description="Address to listen on.",
        min_length=1,
        max_length=253,
    )
    port: int = Field(
        9212,
        title="Listen port",
        description="TCP port the data loggers connect to (0 picks a free one).",
        ge=0,
        le=65535,
    )
    devices: dict[str, Hj212Device] = Field(
        default_factory=dict,
        title="Devices by MN",
        description="Topic of each data logger, keyed by its MN.",
    )
    default_dept: str = Field(
        "env",
        title="Default department",
        description="Department of a logger whose MN is not listed.",
        pattern=_ID,
    )
    default_site: str | None = Field(
        None,
        title="Default site",
        description="Site of a logger whose MN is not listed (its MN becomes the device id); none"
        " drops its frames with a warning.",
        pattern=_ID,
    )
    max_connections: int = Field(
        64, title="Connections", description="Most data loggers connected at once.", ge=1, le=10_000
    )
    idle_timeout_s: float = Field(
        600.0,
        title="Idle timeout",
        description="Close a connection silent for this long.",
        gt=0,
        le=86_400,
    )


class CamerasSettings(Section):
    """The site's cameras, analysed at the gateway (``farsight video run`` in the gateway).

    Findings are published on the site broker, where the local MQTT collector buffers and
    forwards them like any device's data; snapshots and clips stay in ``<data_dir>/evidence``.
    """

    enabled: bool = Field(
        False, title="Enabled", description="Analyse the cameras of `folder` at the gateway."
    )
    folder: Path | None = Field(
        None,
        title="Camera folder",
        description="Folder of camera YAML files (one a camera), hot-reloaded.",
    )
    sites: dict[str, str] = Field(
        default_factory=dict,
        title="Site departments",
        description="Department code of each site the cameras watch ({site-id: env}); a camera of"
        " another site is refused.",
    )
    workers: int = Field(1, title="Workers", description="Analysis processes.", ge=1, le=64)
    resend_s: float = Field(
        5.0,
        title="Re-send interval",
        description="While a finding lasts it is published again this often.",
        ge=0.5,
        le=600,
    )
    clear_after_s: float = Field(
        3.0,
        title="Clear after",
        description="A finding not seen this long is published as cleared.",
        ge=0.5,
        le=600,
    )

    @field_validator("sites")
    @classmethod
    def _ids(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k, d in v.items() if not re.match(_ID, k) or not re.match(_ID, d)]
        if bad:
            raise ValueError(
                f"site and department ids must match {_ID}; bad: {', '.join(map(repr, bad[:5]))}"
            )
        return v


class EvidenceUploadSettings(Section):
    """Evidence files made at the site (snapshots, clips) sent to the hub, which the alerts cite."""

    hub_url: str | None = Field(
        None,
        title="Hub URL",
        description="Base URL of the hub (https://hub.example); none keeps evidence at the site"
        " only.",
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
    )
    token_env: str = Field(
        "FARSIGHT_EDGE_HUB_TOKEN",
        title="Token variable",
        description="Environment variable holding the gateway's bearer token for POST"
        " /api/evidence (never in a file).",
        pattern=r"^[A-Z_][A-Z0-9_]{0,63}$",
    )
    interval_s: float = Field(
        5.0,
        title="Scan interval",
        description="Seconds between two looks for files not yet sent.",
        gt=0,
        le=3600,
    )
    timeout_s: float = Field(
        30.0,
        title="Timeout",
        description="Seconds an upload may take before it is retried later.",
        gt=0,
        le=600,
    )
    ca_file: Path | None = Field(
        None,
        title="CA file",
        description="PEM bundle that signs the hub's certificate; none uses the system store.",
    )


class CollectorsSettings(Section):
    """What the gateway collects at the site."""

    mqtt_local: MqttLocalSettings = Field(
        default_factory=MqttLocalSettings,
        title="Local MQTT",
        description="Devices on the site's broker.",
    )
    hj212_tcp: Hj212TcpSettings = Field(
        default_factory=Hj212TcpSettings,
        title="HJ 212 over TCP",
        description="Data loggers pushing HJ 212 frames.",
    )
    cameras: CamerasSettings = Field(
        default_factory=CamerasSettings,
        title="Cameras",
        description="Cameras analysed at the site; findings go through the local broker.",
    )

    @model_validator(mode="after")
    def _cameras_need_the_local_broker(self) -> CollectorsSettings:
        if self.cameras.enabled:
            if not self.mqtt_local.enabled:
                raise ValueError(
                    "cameras.enabled needs mqtt_local.enabled: findings reach the buffer through"
                    " the site broker"
                )
            if self.cameras.folder is None or not self.cameras.sites:
                raise ValueError("cameras.enabled needs cameras.folder and cameras.sites")
            if not any("detection" in t or t.endswith("#") for t in self.mqtt_local.topics):
                raise ValueError(
                    "cameras.enabled needs a mqtt_local topic that matches .../detection"
                )
        return self


class HealthSettings(Section):
    """Heartbeat sent to the hub on the retained topic ``fs/v1/gw/{gateway}/status``."""

    interval_s: float = Field(
        30.0,
        title="Heartbeat interval",
        description="Seconds between two heartbeats.",
        ge=0.2,
        le=3600,
    )
    ntp_server: str | None = Field(
        None,
        title="NTP server",
        description="Server asked (SNTP) for the clock offset; none reports the offset the hub"
        " echoes, if any.",
        max_length=253,
    )


class LocalRulesSettings(Section):
    """A local subset of rules, evaluated at the site for immediate alerts (the hub evaluates all
    of them again)."""

    enabled: bool = Field(False, title="Enabled", description="Evaluate rules at the gateway.")
    files: tuple[Path, ...] = Field(
        (), title="Rule files", description="YAML rule files (the hub's rule language)."
    )
    default_pack: bool = Field(
        False, title="Default pack", description="Also load the built-in default rule pack."
    )
    sites_file: Path | None = Field(
        None,
        title="Sites file",
        description="Site registry of this site (limits, device kinds); none: the built-in demo"
        " registry.",
    )
    departments: tuple[str, ...] = Field(
        ("env", "transport"),
        title="Departments",
        description="Department codes of the registry.",
        min_length=1,
    )
    alert_topic: str = Field(
        "fs/v1/gw/{gateway}/alert",
        title="Alert topic",
        description="Topic on the site broker where local alerts are published (QoS 1) for sirens,"
        " PLCs and site screens.",
        min_length=1,
        max_length=256,
    )
    queue_max: int = Field(
        100_000,
        title="Queue bound",
        description="Messages waiting for local evaluation; past it the oldest are skipped (the"
        " hub still evaluates them).",
        ge=100,
        le=10_000_000,
    )


class GatewayConfig(Section):
    """The whole configuration of one site gateway."""

    gateway_id: str = Field(
        "gw-1",
        title="Gateway id",
        description="This gateway's id in topics and on the hub (its HMAC key is filed under it).",
        pattern=_ID,
    )
    version: int = Field(
        0,
        title="Config version",
        description="Version of this configuration; the hub pushes higher versions.",
        ge=0,
    )
    data_dir: Path = Field(
        Path("var/edge"),
        title="Data directory",
        description="Holds the buffer and the last applied remote configuration.",
    )
    uplink: UplinkSettings = Field(
        default_factory=UplinkSettings, title="Uplink", description="Central broker."
    )
    buffer: BufferSettings = Field(
        default_factory=BufferSettings, title="Buffer", description="Store-and-forward buffer."
    )
    collectors: CollectorsSettings = Field(
        default_factory=CollectorsSettings, title="Collectors", description="Site inputs."
    )
    health: HealthSettings = Field(
        default_factory=HealthSettings, title="Health", description="Heartbeat."
    )
    rules: LocalRulesSettings = Field(
        default_factory=LocalRulesSettings,
        title="Local rules",
        description="Immediate site alerts.",
    )
    evidence: EvidenceUploadSettings = Field(
        default_factory=EvidenceUploadSettings,
        title="Evidence upload",
        description="Send the site's evidence files to the hub.",
    )
    remote_config: bool = Field(
        True,
        title="Remote configuration",
        description="Accept configuration pushed by the hub on fs/v1/gw/{gateway}/config.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", title="Log level", description="Lowest level logged."
    )

    @property
    def buffer_path(self) -> Path:
        """The buffer's SQLite file."""
        return self.buffer.path or self.data_dir / "buffer.db"


def parse_gateway_config(
    raw: Mapping[str, Any] | None, source: str = "gateway config"
) -> GatewayConfig:
    """Validate a configuration tree; raise :class:`ConfigError` listing every problem."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError(
            [ConfigProblem("", type(raw).__name__, "the top level must be a mapping")],
            source=source,
        )
    try:
        return GatewayConfig.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, dict(raw)), source=source) from None


def load_gateway_config(path: Path | str) -> GatewayConfig:
    """Read and validate ``gateway.yaml``."""
    return parse_gateway_config(read_yaml(Path(path)), source=str(path))


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``, mappings merged key by key (a pushed config may be partial)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out
