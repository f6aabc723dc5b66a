"""The uploader's settings."""

from __future__ import annotations

import os
import re
import socket
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ByteSize, Field, field_validator, model_validator
from pydantic_settings import NoDecode

from streamsend.shared.errors import UnsafePathError
from streamsend.shared.keys import load_recipient, load_signing_key, loading
from streamsend.shared.paths import sanitize_uploader_name, validate_uploader_name
from streamsend.shared.protocol import MAX_CHUNK_SIZE
from streamsend.shared.seal import Sealer
from streamsend.shared.settings import CommonSettings, Seconds, check_topic_name, split_list


def _host_name() -> str:
    return sanitize_uploader_name(socket.gethostname())


class UploaderSettings(CommonSettings):
    """Watch a folder tree and stream every static file in it through a Kafka topic."""

    input_dir: Path = Field(description="folder tree to watch and send")
    uploader_name: str = Field(
        default_factory=_host_name, description="name of this uploader: the first folder at the target"
    )
    file_pattern: str = Field(".*", description="regular expression the file name must fully match")
    min_file_age: Seconds = Field(5.0, ge=0, description="seconds a file must stay unchanged before it is sent")
    chunk_size: ByteSize = Field(ByteSize(0), ge=0, le=MAX_CHUNK_SIZE, description="bytes a chunk, 0 = automatic")
    rescan_interval: Seconds = Field(30.0, gt=0, description="seconds between full rescans of the tree")
    max_in_flight_bytes: ByteSize = Field(
        ByteSize(32 * 1024 * 1024), ge=64 * 1024, description="chunk bytes sent and not yet acknowledged"
    )
    max_concurrent_files: int = Field(8, ge=1, le=256, description="files sent at the same time")
    producers: int = Field(
        8, ge=1, le=16, description="Kafka producers (connections) a large file's window may use, at most"
    )
    linger: Seconds = Field(0.0, ge=0, le=10, description="seconds a producer waits to fill a batch")
    max_batch_bytes: ByteSize = Field(
        ByteSize(256 * 1024), ge=1024, description="batch size for small records (chunks larger go alone)"
    )
    compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "none", description="compression of chunk batches"
    )
    after_upload: Literal["keep", "delete", "move"] = Field(
        "keep", description="what becomes of a file once every chunk is acknowledged"
    )
    done_dir: Path | None = Field(None, description="where after_upload = move puts sent files (same subfolders)")
    state_topic: str = Field(
        "streamsend-state", description="compacted topic remembering what was sent ('' = remember in memory only)"
    )
    transactional: Literal["auto", "on", "off"] = Field(
        "off",
        description="a file's last chunks and its state record in one Kafka transaction: auto (where the broker"
        " has transactions and there is a state_topic), on (required), off",
    )
    resume_within: Seconds = Field(
        3 * 86400.0,
        ge=0,
        description="seconds after its start an unfinished upload may still be resumed (0 = never; keep it well"
        " under the topic's retention, 7 days by default)",
    )
    state_max_files: int = Field(200_000, ge=1000, description="files remembered as sent, at most")
    state_forget_after: Seconds = Field(
        86400.0, gt=0, description="seconds a sent file may be absent from the tree before it is forgotten"
    )

    encrypt_to: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="public keys (X25519 PEM, FILE[,FILE...]) of the downloaders files are sealed for; empty = off",
    )
    signing_key: Path | None = Field(None, description="private key (Ed25519 PEM) this uploader signs its files with")
    encrypt_names: bool = Field(
        False, description="sealed files show a stand-in path on the topic; the real one travels encrypted"
    )

    @field_validator("encrypt_to", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("encrypt_to")
    @classmethod
    def _recipients(cls, value: list[Path]) -> list[Path]:
        if len(set(value)) != len(value):
            raise ValueError("a key is named twice")
        return value

    @model_validator(mode="after")
    def _sealing(self) -> UploaderSettings:
        if not self.encrypt_to and self.signing_key is not None:
            raise ValueError("signing_key needs encrypt_to: the signature travels inside the sealed final chunk")
        if not self.encrypt_to and self.encrypt_names:
            raise ValueError("encrypt_names needs encrypt_to: names are sealed with the files")
        return self

    def sealer(self) -> Sealer | None:
        """What seals this uploader's files, or None when they travel as they are: its key files are read here,
        once, at start (SettingsError names the setting of a key that is missing or of the wrong kind)."""
        if not self.encrypt_to:
            return None
        recipients = [loading("encrypt_to", load_recipient, path) for path in self.encrypt_to]
        signer = None if self.signing_key is None else loading("signing_key", load_signing_key, self.signing_key)
        return Sealer(recipients, signer, self.encrypt_names)

    @field_validator("input_dir")
    @classmethod
    def _readable_dir(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"not a directory: {value}")
        if not os.access(value, os.R_OK | os.X_OK):
            raise ValueError(f"directory not readable: {value}")
        return value.resolve()

    @field_validator("state_topic")
    @classmethod
    def _state_topic(cls, value: str) -> str:
        return value if value == "" else check_topic_name(value)

    @field_validator("transactional", mode="before")
    @classmethod
    def _on_off(cls, value: object) -> object:
        spelled = {"true": "on", "yes": "on", "1": "on", "false": "off", "no": "off", "0": "off"}
        if isinstance(value, bool):
            return "on" if value else "off"
        return spelled.get(value.lower(), value.lower()) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _transactions(self) -> UploaderSettings:
        if self.transactional == "on" and not self.state_topic:
            raise ValueError("transactional on needs a state_topic: the transaction writes the file's state record")
        return self

    @model_validator(mode="after")
    def _done_dir(self) -> UploaderSettings:
        if self.after_upload != "move":
            return self
        if self.done_dir is None:
            raise ValueError("after_upload = move needs done_dir")
        if not self.done_dir.is_dir() or not os.access(self.done_dir, os.W_OK | os.X_OK):
            raise ValueError(f"done_dir is not a writable directory: {self.done_dir}")
        done = self.done_dir.resolve()
        if done.is_relative_to(self.input_dir) or self.input_dir.is_relative_to(done):
            raise ValueError("done_dir and input_dir must not contain one another")
        self.done_dir = done
        return self

    @field_validator("uploader_name")
    @classmethod
    def _uploader_name(cls, value: str) -> str:
        try:
            return validate_uploader_name(value)
        except UnsafePathError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("file_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        # DOTALL: a name with a newline is a name like any other (and reported as one that cannot be sent),
        # not one that silently fails to match ``.*``.
        return re.compile(self.file_pattern, re.DOTALL)
