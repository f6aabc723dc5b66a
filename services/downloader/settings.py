"""The downloader's settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ByteSize, Field, field_validator, model_validator
from pydantic_settings import NoDecode

from streamsend.shared.errors import UnsafePathError
from streamsend.shared.keys import load_identity, load_verify_key, loading
from streamsend.shared.paths import validate_uploader_name
from streamsend.shared.seal import Opener
from streamsend.shared.settings import CommonSettings, Seconds, split_list

FsyncPolicy = Literal["batch", "file", "off"]  # here, not in the I/O module: settings load no libc


class DownloaderSettings(CommonSettings):
    """Rebuild files from a Kafka topic, verify them, and publish them into a mirrored tree."""

    output_dir: Path = Field(description="root of the mirrored tree: <output_dir>/<uploader>/<path>")
    group_id: str = Field("streamsend-downloader", min_length=1, description="Kafka consumer group")
    max_open_files: int = Field(64, ge=1, le=65536, description="staging files kept open at once")
    session_timeout: Seconds = Field(10.0, gt=0, description="seconds without heartbeat before the group moves on")
    heartbeat_interval: Seconds = Field(3.0, gt=0, description="seconds between heartbeats to the group")
    stale_after: Seconds = Field(3600.0, gt=0, description="seconds without a chunk before an upload is dropped")
    min_free_space: ByteSize = Field(
        ByteSize(64 * 1024 * 1024), ge=0, description="bytes kept free on the output filesystem"
    )
    max_fetch_bytes: ByteSize = Field(
        ByteSize(12 * 1024 * 1024),
        ge=1024 * 1024,
        description="bytes fetched from Kafka at once, at most (fetches grow to it on a slow link)",
    )
    events_topic: str = Field(
        "", description="topic for one arrival event per file outcome (JSON, keyed <uploader>/<path>); '' = none"
    )
    quarantine_max_bytes: ByteSize = Field(
        ByteSize(1024 * 1024 * 1024), ge=0, description="bytes of files failing verification kept for inspection"
    )
    isolation_level: Literal["read_committed", "read_uncommitted"] = Field(
        "read_committed", description="read_committed: chunks of an aborted transaction are never seen"
    )
    fsync: FsyncPolicy = Field(
        "batch", description="durability before offsets are committed: batch (grouped syncs), file, or off"
    )

    decrypt_key: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="private keys (X25519 PEM, FILE[,FILE...]) that open files sealed for this downloader;"
        " several during a key rotation",
    )
    trusted_uploaders: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="NAME=FILE[,NAME=FILE...]: uploader names and their public keys (Ed25519 PEM); when set,"
        " only files sealed and signed by the named uploader's key are accepted",
    )

    @field_validator("decrypt_key", "trusted_uploaders", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("trusted_uploaders")
    @classmethod
    def _trusted(cls, value: list[str]) -> list[str]:
        for entry in value:
            name, sign, path = entry.partition("=")
            if not sign or not path.strip():
                raise ValueError(f"{entry!r} is not NAME=FILE")
            try:
                validate_uploader_name(name.strip())
            except UnsafePathError as exc:
                raise ValueError(f"{name!r}: {exc}") from None
        return value

    def opener(self) -> Opener:
        """What opens sealed files and enforces whom this downloader trusts: its key files are read here, once,
        at start (SettingsError names the setting of a key that is missing or of the wrong kind)."""
        trusted: dict[str, list[Ed25519PublicKey]] = {}
        for entry in self.trusted_uploaders:
            name, _, path = entry.partition("=")
            key = loading("trusted_uploaders", load_verify_key, Path(path.strip()))
            trusted.setdefault(name.strip(), []).append(key)
        return Opener([loading("decrypt_key", load_identity, path) for path in self.decrypt_key], trusted)

    @field_validator("output_dir")
    @classmethod
    def _writable_dir(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"not a directory: {value}")
        if not os.access(value, os.R_OK | os.W_OK | os.X_OK):
            raise ValueError(f"directory not writable: {value}")
        return value.resolve()

    @model_validator(mode="after")
    def _timeouts(self) -> DownloaderSettings:
        if self.heartbeat_interval >= self.session_timeout:
            raise ValueError("heartbeat_interval must be shorter than session_timeout")
        return self
