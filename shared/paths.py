"""Relative paths and uploader names as they travel on the wire, and the rules that make them safe.

The uploader applies the same rules before it sends, so a file the downloader would refuse is reported at
the source instead of being streamed and dropped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Final

from streamsend.shared.errors import UnsafePathError

MAX_COMPONENT_BYTES: Final = 255  # NAME_MAX on Linux, macOS and Windows filesystems
MAX_PATH_BYTES: Final = 3072  # leaves room under PATH_MAX (4096) for output_dir and the uploader name
MAX_DEPTH: Final = 128
MAX_UPLOADER_NAME: Final = 64
_UPLOADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_UPLOADER_BAD_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def validate_component(name: str) -> str:
    """One path segment: a plain, visible file or folder name."""
    if not name:
        raise UnsafePathError("empty path segment")
    if name in (".", ".."):
        raise UnsafePathError(f"relative segment {name!r}")
    if name.startswith("."):
        raise UnsafePathError(f"hidden segment {name[:40]!r}")
    if "/" in name or "\\" in name:
        raise UnsafePathError(f"separator inside segment {name[:40]!r}")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise UnsafePathError(f"control character in segment {name[:40]!r}")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise UnsafePathError(f"segment {name[:40]!r} is not valid UTF-8") from None
    if size > MAX_COMPONENT_BYTES:
        raise UnsafePathError(f"segment of {size} bytes exceeds {MAX_COMPONENT_BYTES}")
    return name


def validate_wire_path(path: str) -> tuple[str, ...]:
    """Split a relative POSIX path into segments, refusing anything that could escape a folder.

    Absolute paths, ``.`` and ``..``, empty segments (``a//b``, a trailing ``/``), backslashes, NUL and
    other control characters, hidden segments (which also keeps clear of the downloader's own ``.streamsend``
    folder), over-long names and over-deep trees are all refused.
    """
    if not path:
        raise UnsafePathError("empty path")
    if path.startswith("/"):
        raise UnsafePathError("absolute path")
    size = len(path.encode("utf-8", errors="surrogatepass"))
    if size > MAX_PATH_BYTES:
        raise UnsafePathError(f"path of {size} bytes exceeds {MAX_PATH_BYTES}")
    parts = path.split("/")
    if len(parts) > MAX_DEPTH:
        raise UnsafePathError(f"path deeper than {MAX_DEPTH} folders")
    return tuple(validate_component(part) for part in parts)


def to_wire_path(parts: Sequence[str]) -> str:
    """The wire form of a path given as segments relative to the input folder."""
    path = "/".join(parts)
    validate_wire_path(path)
    return path


def validate_uploader_name(name: str) -> str:
    """An uploader name becomes the first folder under the output tree: ASCII letters, digits, ``._-``."""
    if not _UPLOADER_NAME.fullmatch(name):
        raise UnsafePathError(
            f"uploader name {name[:40]!r} must be 1-{MAX_UPLOADER_NAME} of [A-Za-z0-9._-], not starting with . - _"
        )
    return name


def sanitize_uploader_name(raw: str) -> str:
    """Turn a host name (or any text) into a valid uploader name."""
    cleaned = _UPLOADER_BAD_CHARS.sub("-", raw).lstrip("._-")[:MAX_UPLOADER_NAME].rstrip("._-")
    return cleaned or "uploader"
