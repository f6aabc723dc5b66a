"""The uploader's settings."""

from __future__ import annotations

import os
import re
import socket
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import ByteSize, Field, field_validator

from streamsend.shared.paths import UnsafePathError, sanitize_uploader_name, validate_uploader_name
from streamsend.shared.protocol import MAX_CHUNK_SIZE
from streamsend.shared.settings import CommonSettings


def _host_name() -> str:
    return sanitize_uploader_name(socket.gethostname())


class UploaderSettings(CommonSettings):
    """Watch a folder tree and stream every static file in it through a Kafka topic."""

    input_dir: Path = Field(description="folder tree to watch and send")
    uploader_name: str = Field(
        default_factory=_host_name, description="name of this uploader: the first folder at the target"
    )
    file_pattern: str = Field(".*", description="regular expression the file name must fully match")
    min_file_age: float = Field(5.0, ge=0, description="seconds a file must stay unchanged before it is sent")
    chunk_size: ByteSize = Field(ByteSize(0), ge=0, le=MAX_CHUNK_SIZE, description="bytes a chunk, 0 = automatic")
    rescan_interval: float = Field(30.0, gt=0, description="seconds between full rescans of the tree")
    max_in_flight_bytes: ByteSize = Field(
        ByteSize(32 * 1024 * 1024), ge=64 * 1024, description="chunk bytes sent and not yet acknowledged"
    )
    max_concurrent_files: int = Field(8, ge=1, le=256, description="files sent at the same time")
    producers: int = Field(2, ge=1, le=16, description="Kafka producers (connections) in the pool")
    linger: float = Field(0.005, ge=0, le=10, description="seconds a producer waits to fill a batch")
    max_batch_bytes: ByteSize = Field(
        ByteSize(256 * 1024), ge=1024, description="batch size for small records (chunks larger go alone)"
    )
    compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "none", description="compression of chunk batches"
    )

    @field_validator("input_dir")
    @classmethod
    def _readable_dir(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"not a directory: {value}")
        if not os.access(value, os.R_OK | os.X_OK):
            raise ValueError(f"directory not readable: {value}")
        return value.resolve()

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
        return re.compile(self.file_pattern)
