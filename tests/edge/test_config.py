"""gateway.yaml validation: every problem with its key path; unknown keys refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import GatewayConfig, load_gateway_config, parse_gateway_config
from farsight.errors import ConfigError


def test_defaults_are_valid_and_every_field_is_documented() -> None:
    GatewayConfig()
    schema = GatewayConfig.model_json_schema()

    def walk(node: dict, path: str) -> None:
        for name, prop in node.get("properties", {}).items():
            assert prop.get("title") and prop.get("description"), (
                f"{path}.{name} lacks a title or description"
            )

    walk(schema, "")
    for name, sub in schema.get("$defs", {}).items():
        walk(sub, name)


def test_every_problem_is_reported_with_its_key_path() -> None:
    with pytest.raises(ConfigError) as e:
        parse_gateway_config(
            {
                "gateway_id": "bad id!",
                "uplink": {"port": 0, "inflght": 3},
                "buffer": {"policy": "drop_newest"},
                "collectors": {"hj212_tcp": {"devices": {"X": {"dept": "env"}}}},
            }
        )
    paths = sorted(p.path for p in e.value.problems)
    assert paths == [
        "buffer.policy",
        "collectors.hj212_tcp.devices.X.device",
        "collectors.hj212_tcp.devices.X.site",
        "gateway_id",
        "uplink.inflght",
        "uplink.port",
    ]
    assert "unknown key" in next(p.message for p in e.value.problems if p.path == "uplink.inflght")


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cert_file and key_file go together"):
        parse_gateway_config({"uplink": {"tls": {"enabled": True, "cert_file": "gw.crt"}}})


def test_load_reads_yaml_and_reports_syntax_errors(tmp_path: Path) -> None:
    p = tmp_path / "gateway.yaml"
    p.write_text("gateway_id: gw-7\nbuffer: {policy: drop_oldest}\n")
    assert load_gateway_config(p).buffer.policy == "drop_oldest"
    p.write_text("gateway_id: [\n")
    with pytest.raises(ConfigError, match="YAML syntax error"):
        load_gateway_config(p)


def test_the_example_configuration_is_valid() -> None:
    cfg = load_gateway_config(Path(__file__).resolve().parents[2] / "edge" / "gateway.example.yaml")
    assert (
        cfg.uplink.tls.enabled
        and cfg.collectors.hj212_tcp.devices["42050000000001"].site == "yc-stack-1"
    )
