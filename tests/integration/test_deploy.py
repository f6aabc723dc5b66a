"""Deployment artefacts checked as far as this machine allows: systemd units, the Helm chart (rendered and
validated against the Kubernetes schemas), the compose file, the Grafana dashboard and the Dockerfiles.

Tools pip cannot bring are installed by scripts/install-tools (which scripts/test runs first); where one is missing the
test says so and which script installs it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from streamsend.downloader.settings import DownloaderSettings
from streamsend.shared.metrics import DownloaderMetrics, UploaderMetrics
from streamsend.uploader.settings import UploaderSettings

ROOT = Path(__file__).parents[2]
SETTINGS = {
    f"STREAMSEND_{name.upper()}" for name in {**UploaderSettings.model_fields, **DownloaderSettings.model_fields}
}


def _tool(name: str) -> str:
    """A tool on PATH, beside this Python (pip-installed tools), or in .tools/bin (scripts/install-tools)."""
    places = [Path(sys.executable).parent / name, ROOT / ".tools/bin" / name]
    found = shutil.which(name) or next((str(path) for path in places if path.exists()), None)
    if found is None:
        pytest.skip(f"{name} is not installed (scripts/install-tools installs it; scripts/test runs it as root)")
    return found


def test_every_streamsend_variable_in_the_deployment_files_is_a_setting() -> None:
    files = [
        *ROOT.glob("Dockerfile.*"),
        ROOT / "deploy/compose.yaml",
        *ROOT.glob("deploy/systemd/*"),
        *ROOT.glob("helm/streamsend/**/*.yaml"),
        *ROOT.glob("helm/streamsend/templates/*.tpl"),
    ]
    used = {name for path in files for name in re.findall(r"STREAMSEND_[A-Z_]+", path.read_text())}
    assert used and used <= SETTINGS, sorted(used - SETTINGS)


def test_the_dashboard_only_uses_metrics_the_daemons_export() -> None:
    registries = [CollectorRegistry(), CollectorRegistry()]
    UploaderMetrics(registries[0])
    DownloaderMetrics(registries[1])
    exported = {
        f"{family.name}_total" if family.type == "counter" else family.name
        for registry in registries
        for family in registry.collect()
    }
    dashboard = json.loads((ROOT / "deploy/grafana/streamsend-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in expressions for name in re.findall(r"streamsend_[a-z_]+", expr)}
    assert used and used <= exported, sorted(used - exported)


def test_the_compose_stack_wires_broker_downloader_and_uploader() -> None:
    compose = yaml.safe_load((ROOT / "deploy/compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"kafka", "downloader", "uploader"}
    for role in ("downloader", "uploader"):
        service = services[role]
        assert (ROOT / "deploy" / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert service["environment"]["STREAMSEND_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_dockerfiles_are_hadolint_clean() -> None:
    result = subprocess.run(
        [_tool("hadolint"), "Dockerfile.uploader", "Dockerfile.downloader"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("role", ["uploader", "downloader"])
def test_systemd_units_verify_clean(tmp_path: Path, role: str) -> None:
    analyze = _tool("systemd-analyze")
    root = tmp_path / "root"
    for folder in ("etc/systemd/system", "etc/streamsend", "opt/streamsend/bin", "usr/lib/systemd"):
        (root / folder).mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    stub = root / "opt/streamsend/bin/streamsend"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    unit = root / "etc/systemd/system" / f"streamsend-{role}.service"
    shutil.copy(ROOT / "deploy/systemd" / f"streamsend-{role}.service", unit)
    shutil.copy(ROOT / "deploy/systemd" / f"{role}.env", root / "etc/streamsend")
    result = subprocess.run(
        [analyze, "verify", "--man=no", f"--root={root}", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
    security = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=25", f"--root={root}", str(unit)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert security.returncode == 0, security.stdout[-3000:]
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    assert score is not None and float(score.group(1)) <= 2.5, security.stdout[-1000:]


VALUE_SETS: dict[str, list[str]] = {
    "defaults with a claim": ["uploader.input.existingClaim=outbox"],
    "edge DaemonSet, SASL over TLS, ServiceMonitor": [
        "uploader.kind=DaemonSet", "uploader.input.hostPath=/var/spool/outbox", "kafka.securityProtocol=SASL_SSL",
        "kafka.sasl.username=edge", "kafka.sasl.existingSecret=kafka-sasl", "kafka.tls.existingSecret=kafka-tls",
        "kafka.tls.mutual=true", "metrics.serviceMonitor.enabled=true",
    ],
    "downloaders as a StatefulSet": ["uploader.enabled=false", "downloader.kind=StatefulSet", "downloader.replicas=3"],
    "downloaders sharing a volume": ["uploader.enabled=false", "downloader.replicas=2"],
    "sealed files": ["uploader.input.existingClaim=x", "uploader.sealing.existingSecret=keys",
                     "uploader.sealing.recipientKeys={office.pub,backup.pub}", "uploader.sealing.signingKey=signer.key",
                     "downloader.sealing.existingSecret=keys", "downloader.sealing.decryptKeys={recipient.key}",
                     "downloader.sealing.trustedUploaders.till-4=till-4.pub"],
}  # fmt: skip


def _render(*sets: str) -> list[dict[str, Any]]:
    args = [item for value in sets for item in ("--set", value)]
    result = subprocess.run(
        [_tool("helm"), "template", "edge", str(ROOT / "helm/streamsend"), *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_the_helm_chart_lints_strictly() -> None:
    result = subprocess.run(
        [_tool("helm"), "lint", "--strict", str(ROOT / "helm/streamsend"), "--set", "uploader.input.existingClaim=x"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("sets", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_the_helm_chart_renders_valid_kubernetes_manifests(sets: list[str]) -> None:
    import kubernetes_validate

    documents = _render(*sets)
    for document in documents:
        if document["kind"] == "ServiceMonitor":  # a CRD: no schema ships with Kubernetes
            assert document["spec"]["endpoints"][0]["port"] == "metrics"
            continue
        kubernetes_validate.validate(document, "1.31.0", strict=True)
    workloads = [d for d in documents if d["kind"] in ("Deployment", "DaemonSet", "StatefulSet")]
    assert workloads
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        [container] = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert {env["name"] for env in container["env"]} <= SETTINGS
        assert container["resources"]["limits"]["memory"]


def test_the_chart_keeps_names_stable_and_volumes_right() -> None:
    [daemonset] = [
        d for d in _render(*VALUE_SETS["edge DaemonSet, SASL over TLS, ServiceMonitor"]) if d["kind"] == "DaemonSet"
    ]
    env = {e["name"]: e for e in daemonset["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["STREAMSEND_UPLOADER_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["STREAMSEND_SASL_PASSWORD_FILE"]["value"] == "/etc/streamsend/sasl/password"
    assert "STREAMSEND_SASL_PASSWORD" not in env  # secrets as files, never in the environment
    [statefulset] = [d for d in _render(*VALUE_SETS["downloaders as a StatefulSet"]) if d["kind"] == "StatefulSet"]
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "inbox"
    [claim] = [d for d in _render(*VALUE_SETS["downloaders sharing a volume"]) if d["kind"] == "PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_chart_mounts_the_keys_of_sealed_files_and_names_them() -> None:
    documents = _render(*VALUE_SETS["sealed files"])
    env = {}
    for workload in (d for d in documents if d["kind"] == "Deployment"):
        pod = workload["spec"]["template"]["spec"]
        [container] = pod["containers"]
        env.update({e["name"]: e.get("value") for e in container["env"]})
        assert {"name": "seal", "mountPath": "/etc/streamsend/seal", "readOnly": True} in container["volumeMounts"]
        assert {"name": "seal", "secret": {"secretName": "keys", "defaultMode": 0o400}} in pod["volumes"]
    assert env["STREAMSEND_ENCRYPT_TO"] == "/etc/streamsend/seal/office.pub,/etc/streamsend/seal/backup.pub"
    assert env["STREAMSEND_SIGNING_KEY"] == "/etc/streamsend/seal/signer.key"
    assert env["STREAMSEND_DECRYPT_KEY"] == "/etc/streamsend/seal/recipient.key"
    assert env["STREAMSEND_TRUSTED_UPLOADERS"] == "till-4=/etc/streamsend/seal/till-4.pub"


def test_the_chart_refuses_an_uploader_without_input() -> None:
    result = subprocess.run(
        [_tool("helm"), "template", "edge", str(ROOT / "helm/streamsend")], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and "uploader.input needs hostPath or existingClaim" in result.stderr
