"""SASL and TLS on Apache Kafka's own listeners: PLAIN, SCRAM-SHA-256/512, an SSL listener with PEM files, and
one that requires a client certificate (mutual TLS).

Right credentials stream a file; a wrong password, an unknown user, an untrusted CA or a missing client
certificate stop the daemon at start with exit code 2 and a line naming the setting.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streamsend.demo.kafka_broker import ApacheKafka
from tests.support.brokers import require_kafka
from tests.support.certs import Pki, make_pki
from tests.support.daemons import downloader, uploader
from tests.support.processes import DaemonProcess, daemon_env
from tests.support.waiting import wait_until

pytestmark = pytest.mark.kafka

USER, PASSWORD = "edge", "edge-secret"
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secured(pki: Pki) -> Iterator[ApacheKafka]:
    """One node with a plaintext listener (between the node's own parts), a SASL listener offering PLAIN and
    both SCRAM mechanisms, and an SSL listener whose certificate and key are PEM files."""
    require_kafka()
    plain = f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}="{PASSWORD}";'
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    properties = {
        "sasl.enabled.mechanisms": ",".join(MECHANISMS),
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": plain,
        "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": scram,
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": scram,
        "listener.name.ssl.ssl.keystore.type": "PEM",
        "listener.name.ssl.ssl.keystore.certificate.chain": _pem_value(pki.server_cert),
        "listener.name.ssl.ssl.keystore.key": _pem_value(pki.server_key),
    }
    users = [f"{mechanism}=[name={USER},password={PASSWORD}]" for mechanism in MECHANISMS[1:]]
    with ApacheKafka(listeners=("PLAINTEXT", "SASL_PLAINTEXT", "SSL"), properties=properties, scram=users) as kafka:
        yield kafka


@pytest.fixture(scope="module")
def mutual(pki: Pki) -> Iterator[ApacheKafka]:
    """An SSL listener that wants a client certificate signed by the test CA (a truststore given as PEM)."""
    require_kafka()
    properties = {
        "listener.name.ssl.ssl.keystore.type": "PEM",
        "listener.name.ssl.ssl.keystore.certificate.chain": _pem_value(pki.server_cert),
        "listener.name.ssl.ssl.keystore.key": _pem_value(pki.server_key),
        "listener.name.ssl.ssl.truststore.type": "PEM",
        "listener.name.ssl.ssl.truststore.certificates": _pem_value(pki.ca),
        "listener.name.ssl.ssl.client.auth": "required",
    }
    with ApacheKafka(listeners=("PLAINTEXT", "SSL"), properties=properties) as kafka:
        yield kafka


def _pem_value(path: Path) -> str:
    """A PEM file as one properties value: line breaks escaped, as server.properties needs."""
    return path.read_text().strip().replace("\n", "\\n\\\n")


async def _stream_one_file(bootstrap: str, tmp_path: Path, **security: object) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    target.mkdir()
    (source / "policy.pdf").write_bytes(b"%PDF secured" * 5000)
    topic = f"secure-{tmp_path.name}"
    async with (
        downloader(bootstrap, topic, target, **security),
        uploader(bootstrap, topic, source, state_topic="", **security) as up,
    ):
        await wait_until(lambda: (target / "edge-1" / "policy.pdf").exists(), 60, "the file")
        assert up.metric("streamsend_uploader_files_sent_total") == 1
    assert (target / "edge-1" / "policy.pdf").read_bytes() == b"%PDF secured" * 5000


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_sasl_logins_stream_files(secured: ApacheKafka, tmp_path: Path, mechanism: str) -> None:
    await _stream_one_file(
        secured.servers("SASL_PLAINTEXT"), tmp_path, security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism, sasl_username=USER, sasl_password=PASSWORD,
    )  # fmt: skip


async def test_the_pem_ssl_listener_streams_files(secured: ApacheKafka, pki: Pki, tmp_path: Path) -> None:
    await _stream_one_file(secured.servers("SSL"), tmp_path, security_protocol="SSL", ssl_cafile=pki.ca)


async def _refused(bootstrap: str, tmp_path: Path, role: str, **settings: object) -> str:
    folder = tmp_path / "data"
    folder.mkdir()
    where = {"input_dir": folder} if role == "uploader" else {"output_dir": folder}
    env = daemon_env(bootstrap, "refused", **where, **settings)
    process = await DaemonProcess(role, tmp_path / f"{role}.log", env).start()
    try:
        assert await process.wait(timeout_s=60) == 2, process.log()[-2000:]
    finally:
        await process.kill()
    return process.log()


@pytest.mark.parametrize("role", ["uploader", "downloader"])
@pytest.mark.parametrize(("mechanism", "user", "password"), [
    ("PLAIN", USER, "wrong"), ("SCRAM-SHA-256", USER, "wrong"), ("SCRAM-SHA-512", "nobody", PASSWORD),
])  # fmt: skip
async def test_a_refused_login_stops_the_daemon_at_start(
    secured: ApacheKafka, tmp_path: Path, role: str, mechanism: str, user: str, password: str
) -> None:
    log = await _refused(
        secured.servers("SASL_PLAINTEXT"), tmp_path, role, security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism, sasl_username=user, sasl_password=password,
    )  # fmt: skip
    assert "invalid setting sasl_mechanism/sasl_username/sasl_password:" in log
    assert "refused the login" in log
    assert password not in log


async def test_an_untrusted_ca_stops_the_daemon_at_start(secured: ApacheKafka, pki: Pki, tmp_path: Path) -> None:
    log = await _refused(secured.servers("SSL"), tmp_path, "uploader", security_protocol="SSL", ssl_cafile=pki.rogue_ca)
    assert "invalid setting ssl_cafile: TLS with" in log
    assert "CERTIFICATE_VERIFY_FAILED" in log


async def test_mutual_tls_streams_files_with_a_client_certificate(
    mutual: ApacheKafka, pki: Pki, tmp_path: Path
) -> None:
    await _stream_one_file(
        mutual.servers("SSL"), tmp_path, security_protocol="SSL", ssl_cafile=pki.ca,
        ssl_certfile=pki.client_cert, ssl_keyfile=pki.client_key,
    )  # fmt: skip


@pytest.mark.parametrize("role", ["uploader", "downloader"])
async def test_mutual_tls_without_a_client_certificate_stops_the_daemon_at_start(
    mutual: ApacheKafka, pki: Pki, tmp_path: Path, role: str
) -> None:
    log = await _refused(mutual.servers("SSL"), tmp_path, role, security_protocol="SSL", ssl_cafile=pki.ca)
    assert "invalid setting ssl_certfile/ssl_keyfile: TLS with" in log
