"""The sidecar plugin's readiness: the ready line decides (the host cannot reach the sidecar's port)."""
from __future__ import annotations

import pytest
from cronium.core.errors import PhaseError
from cronium.plugins import sidecar

CFG = {"sidecar.ready_timeout": 30, "images.sidecar": "cronium/sidecar:latest"}


def ready_info(output: bytes):
    return sidecar.ready_info(None, "cid", "cronium-runtime-x", "img", True, output, 0.0, CFG)


def test_a_ready_line_with_the_store_ok_is_ready_and_has_no_probe_url():
    info = ready_info(b'log line\n{"event": "ready", "host": "10.0.0.2", "port": 8081, "store": "ok"}\n')
    assert info.url == "http://runtime-api:8081" and info.probe_url is None


@pytest.mark.parametrize("line", [b'{"event": "ready", "host": "10.0.0.2", "port": 8081, "store": "unavailable"}',
                                  b'{"event": "ready", "port": 8081}'])
def test_a_ready_line_without_the_store_ok_fails_the_sidecar_phase(line):
    with pytest.raises(PhaseError, match="cannot reach the store") as raised:
        ready_info(line + b"\n")
    assert "cronium services status" in raised.value.hint


def test_the_settings_name_the_job_networks_subnet_not_a_host():
    from types import SimpleNamespace

    execution = SimpleNamespace(execution_id="exec_00000000000000aa", job_id="j", namespace="default")
    token = SimpleNamespace(claims=SimpleNamespace(algorithm="EdDSA", audience="runtime-api"),
                            verify_key=SimpleNamespace(reveal=lambda: "pem"))
    cfg = {"redis.key_prefix": "cronium:", "sidecar.rate_limit_per_minute": 1, "sidecar.rate_limit_burst": 1,
           "sidecar.auth_failures_per_minute": 1, "sidecar.auth_failures_burst": 1, "sidecar.max_body_bytes": 1,
           "variables.max_value_bytes": 1, "variables.max_count": 1, "variables.max_bytes": 1}
    network = SimpleNamespace(subnet="10.213.4.16/28")
    settings = sidecar.sidecar_settings(execution, token, "redis://x", cfg, network)
    assert settings["listen_subnet"] == "10.213.4.16/28" and "host" not in settings
