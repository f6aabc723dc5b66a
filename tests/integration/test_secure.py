"""TLS and mutual TLS for real: a TLS terminator in front of the broker, which advertises it.

The bundled broker has no usable TLS listener of its own, so TLS ends at the relay; the daemons speak TLS
exactly as they would to Apache Kafka. Certificate problems must stop a daemon at start with a clear line
and exit code 2, never turn into an endless silent retry.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from streamsend.demo.broker import EmbeddedBroker, free_port
from tests.support.certs import Pki, make_pki
from tests.support.daemons import downloader, uploader
from tests.support.processes import DaemonProcess, daemon_env
from tests.support.tls import TlsTerminator
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@contextmanager
def tls_broker(cert: Path, key: Path, client_ca: Path | None = None) -> Iterator[str]:
    """A broker behind a TLS terminator; yields the bootstrap address (the terminator's)."""
    port = free_port()
    with EmbeddedBroker(advertised_port=port) as broker:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        if client_ca is not None:  # mutual TLS: no client certificate, no connection
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(client_ca)
        terminator = TlsTerminator(port, broker.port, context).start()
        try:
            yield broker.bootstrap
        finally:
            terminator.stop()


async def _stream_one_file(bootstrap: str, tmp_path: Path, **security: object) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    target.mkdir()
    (source / "secret-plans.txt").write_text("over TLS")
    async with downloader(bootstrap, "secure", target, **security), uploader(bootstrap, "secure", source, **security):
        await wait_until(lambda: (target / "edge-1" / "secret-plans.txt").exists(), 60, "the file over TLS")
    assert (target / "edge-1" / "secret-plans.txt").read_text() == "over TLS"


async def test_files_stream_over_tls(pki: Pki, tmp_path: Path) -> None:
    with tls_broker(pki.server_cert, pki.server_key) as bootstrap:
        await _stream_one_file(bootstrap, tmp_path, security_protocol="SSL", ssl_cafile=pki.ca)


async def test_files_stream_over_mutual_tls(pki: Pki, tmp_path: Path) -> None:
    with tls_broker(pki.server_cert, pki.server_key, client_ca=pki.ca) as bootstrap:
        await _stream_one_file(
            bootstrap, tmp_path, security_protocol="SSL", ssl_cafile=pki.ca, ssl_certfile=pki.client_cert,
            ssl_keyfile=pki.client_key,
        )  # fmt: skip


async def test_host_name_checks_can_be_turned_off_for_brokers_known_by_address(pki: Pki, tmp_path: Path) -> None:
    with tls_broker(pki.wrong_name_cert, pki.wrong_name_key) as bootstrap:
        await _stream_one_file(
            bootstrap, tmp_path, security_protocol="SSL", ssl_cafile=pki.ca, ssl_check_hostname=False
        )


async def _refused_at_start(role: str, bootstrap: str, tmp_path: Path, **settings: object) -> str:
    folder = tmp_path / "data"
    folder.mkdir()
    place = {"input_dir": folder} if role == "uploader" else {"output_dir": folder}
    env = daemon_env(bootstrap, "secure", security_protocol="SSL", retry_backoff_max=1, **place, **settings)
    process = await DaemonProcess(role, tmp_path / f"{role}.log", env).start()
    try:
        assert await process.wait(timeout_s=60) == 2, process.log()[-3000:]
    finally:
        await process.kill()
    return process.log()


@pytest.mark.parametrize("role", ["uploader", "downloader"])
async def test_an_untrusted_broker_certificate_stops_the_daemon_at_start(pki: Pki, tmp_path: Path, role: str) -> None:
    with tls_broker(pki.server_cert, pki.server_key) as bootstrap:
        log = await _refused_at_start(role, bootstrap, tmp_path, ssl_cafile=pki.rogue_ca)
    assert "invalid setting ssl_cafile: TLS with" in log
    assert "CERTIFICATE_VERIFY_FAILED" in log


async def test_a_missing_client_certificate_stops_the_daemon_at_start(pki: Pki, tmp_path: Path) -> None:
    with tls_broker(pki.server_cert, pki.server_key, client_ca=pki.ca) as bootstrap:
        log = await _refused_at_start("downloader", bootstrap, tmp_path, ssl_cafile=pki.ca)
    assert "invalid setting ssl_certfile/ssl_keyfile: TLS with" in log


async def test_a_broker_certificate_for_another_host_stops_the_daemon_at_start(pki: Pki, tmp_path: Path) -> None:
    with tls_broker(pki.wrong_name_cert, pki.wrong_name_key) as bootstrap:
        log = await _refused_at_start("uploader", bootstrap, tmp_path, ssl_cafile=pki.ca)
    assert "invalid setting ssl_check_hostname: TLS with" in log
