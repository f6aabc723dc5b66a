"""The live view (``GET /status``) as terminal text: one table with progress bars. Pure: a document in, lines
out."""

from __future__ import annotations

import time
import unicodedata
from typing import Any

BAR = 24
RECENT = 10


def human(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def bar(done: int, size: int, width: int = BAR) -> str:
    share = 1.0 if size <= 0 else min(1.0, done / size)
    filled = round(share * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {100 * share:3.0f}%"


def _clock(seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(seconds))


def _kafka(kafka: dict[str, Any]) -> str:
    at = f" at {kafka['address']}" if kafka.get("address") else ""
    if kafka["connected"]:
        state = f"connected{at}"
    elif kafka["outage_since"] is not None:
        state = f"UNREACHABLE{at} since {_clock(kafka['outage_since'])}"
        if kafka.get("error"):
            state += f" ({kafka['error']})"
    else:
        state = f"connecting{at}"
    lag = kafka.get("lag") or {}
    if lag:
        state += ", lag " + ", ".join(f"p{partition} {records}" for partition, records in lag.items())
    return state


def render(status: dict[str, Any], width: int = 100) -> list[str]:
    totals = status["totals"]
    lines = [
        f"Streamsend {status['role']} {status['name']}".rstrip() + f" - Kafka {_kafka(status['kafka'])}",
        f"{totals['files']} files ({human(totals['bytes'])}) done, {totals['failed']} failed since "
        f"{_clock(status['since'])}" + (f"; {status['waiting']} waiting" if status.get("waiting") else ""),
        "",
        f"IN FLIGHT ({len(status['in_flight'])})",
    ]
    path_width = max(40, width - BAR - 46)
    for item in status["in_flight"]:
        lines.append(
            f"  {_pad(_fit(item['path'], path_width), path_width)} {bar(item['done'], item['size'])} "
            f"{human(item['done']):>9} / {human(item['size']):<9} {human(item['rate']) + '/s':>11}"
        )
    if status.get("in_flight_untracked"):
        lines.append(f"  ... and {status['in_flight_untracked']} more")
    lines += ["", f"COMPLETED (last {min(RECENT, len(status['completed']))} of {len(status['completed'])} kept)"]
    for item in status["completed"][:RECENT]:
        lines.append(
            f"  {_clock(item['finished'])} {_pad(_fit(item['path'], path_width), path_width)} {human(item['size']):>9} "
            f"{item['seconds']:7.2f} s  sha256 {item['sha256'][:16]}"
        )
    lines += ["", f"FAILED ({len(status['failed'])})"]
    for item in status["failed"][:RECENT]:
        lines.append(f"  {_clock(item['at'])} {_fit(item['path'], path_width)}: {item['reason']}")
    return lines


def columns(text: str) -> int:
    """Terminal columns ``text`` takes: two for wide (CJK, most emoji), none for combining marks."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _fit(text: str, width: int) -> str:
    """``text`` in at most ``width`` columns: its end, after "...", when it is too wide."""
    if columns(text) <= width:
        return text
    kept = ""
    for char in reversed(text):
        if columns(char + kept) > width - 3:
            break
        kept = char + kept
    return "..." + kept


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - columns(text))
