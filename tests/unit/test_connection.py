"""Settings to Kafka client options: TLS, SASL mechanisms, secrets from files. (SASL cannot be exercised
against the bundled broker, so its mapping and its error paths are tested here.)"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from streamsend.shared.connection import client_options, stop_client
from streamsend.shared.errors import SettingsError
from streamsend.shared.settings import load_settings
from streamsend.uploader.settings import UploaderSettings
from tests.support.certs import make_pki


def _settings(tmp_path: Path, *args: str) -> UploaderSettings:
    return load_settings(UploaderSettings, ["--input-dir", str(tmp_path), *args], "t")


def test_plaintext_has_neither_tls_nor_sasl(tmp_path: Path) -> None:
    options = client_options(_settings(tmp_path), "uploader")
    assert options["security_protocol"] == "PLAINTEXT"
    assert "ssl_context" not in options and "sasl_mechanism" not in options
    assert options["client_id"] == "streamsend-uploader"
    assert options["request_timeout_ms"] == 30_000


def test_tls_loads_the_ca_and_the_client_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    settings = _settings(
        tmp_path, "--security-protocol", "SSL", "--ssl-cafile", str(pki.ca), "--ssl-certfile", str(pki.client_cert),
        "--ssl-keyfile", str(pki.client_key),
    )  # fmt: skip
    context = client_options(settings, "uploader")["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert any("streamsend test CA" in str(ca["subject"]) for ca in context.get_ca_certs())
    unchecked = _settings(
        tmp_path, "--security-protocol", "SSL", "--ssl-cafile", str(pki.ca), "--no-ssl-check-hostname"
    )
    assert not client_options(unchecked, "uploader")["ssl_context"].check_hostname


def test_a_key_that_does_not_match_its_certificate_names_the_settings(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    settings = _settings(
        tmp_path, "--security-protocol", "SSL", "--ssl-certfile", str(pki.client_cert),
        "--ssl-keyfile", str(pki.server_key),
    )  # fmt: skip
    with pytest.raises(SettingsError, match="invalid setting ssl_cafile/ssl_certfile/ssl_keyfile"):
        client_options(settings, "uploader")


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_with_a_password_from_a_file(tmp_path: Path, mechanism: str) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    settings = _settings(
        tmp_path, "--security-protocol", "SASL_SSL", "--sasl-mechanism", mechanism, "--sasl-username", "pos-42",
        "--sasl-password-file", str(secret),
    )  # fmt: skip
    options = client_options(settings, "uploader")
    assert options["security_protocol"] == "SASL_SSL" and isinstance(options["ssl_context"], ssl.SSLContext)
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        mechanism, "pos-42", "s3cret",
    )  # fmt: skip
    assert "s3cret" not in settings.describe() and "s3cret" not in repr(settings)


async def test_oauthbearer_reads_its_token_file_at_every_connection(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    settings = _settings(
        tmp_path, "--security-protocol", "SASL_SSL", "--sasl-mechanism", "OAUTHBEARER",
        "--sasl-oauth-token-file", str(token),
    )  # fmt: skip
    provider = client_options(settings, "uploader")["sasl_oauth_token_provider"]
    assert await provider.token() == "first"
    token.write_text("rotated")
    assert await provider.token() == "rotated"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--security-protocol", "SASL_PLAINTEXT"], "needs sasl_username and sasl_password"),
        (["--security-protocol", "SASL_SSL", "--sasl-username", "u"], "needs sasl_username and sasl_password"),
        (["--security-protocol", "SASL_SSL", "--sasl-mechanism", "OAUTHBEARER"], "needs sasl_oauth_token_file"),
        (["--sasl-password-file", "/no/such/file"], "invalid setting sasl_password_file: file not found"),
        (["--ssl-cafile", "/no/such/ca.pem"], "invalid setting ssl_cafile: file not found"),
        (["--sasl-mechanism", "GSSAPI"], "invalid setting sasl_mechanism"),
    ],
)
def test_incomplete_security_settings_are_refused(tmp_path: Path, args: list[str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        _settings(tmp_path, *args)


class HungClient:
    """A Kafka client whose stop waits for a broker that never answers."""

    def __init__(self) -> None:
        self._closed = False
        self.client = self
        self.connections_closed = False
        self.stopping = asyncio.Event()

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.sleep(300)

    async def close(self) -> None:
        self.connections_closed = True


async def test_a_forced_stop_closes_a_client_at_once_without_waiting_for_the_broker() -> None:
    client = HungClient()
    stopping = asyncio.ensure_future(stop_client(client, timeout_s=300))
    await client.stopping.wait()
    stopping.cancel()  # the second signal
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(stopping, 10)
    assert client.connections_closed and client._closed  # closed: no "Unclosed AIOKafkaProducer" later
