"""Which files in the input tree are the uploader's to send, judged by their relative path alone."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from streamsend.shared.errors import UnsafePathError
from streamsend.shared.paths import to_wire_path


@dataclass(frozen=True, slots=True)
class Selection:
    wire_path: str | None  # set when the file is to be sent
    reason: str = ""  # why not, when it is not
    report: bool = False  # whether the reason deserves a warning (a name we cannot carry) or is routine


def select(parts: Sequence[str], pattern: re.Pattern[str]) -> Selection:
    """Hidden files and folders are skipped, the name must fully match ``pattern``, and the path must be
    one the downloader accepts (valid UTF-8, no control characters or backslashes, within length limits)."""
    if any(part.startswith(".") for part in parts):
        return Selection(None, "hidden")
    if not pattern.fullmatch(parts[-1]):
        return Selection(None, "does not match file_pattern")
    try:
        return Selection(to_wire_path(parts))
    except UnsafePathError as exc:
        return Selection(None, f"name cannot be sent: {exc}", report=True)
