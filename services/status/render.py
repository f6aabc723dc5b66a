"""The live view (``GET /status``) as terminal text: one table with progress bars. Pure: a document in, lines
out."""

from __future__ import annotations

import time
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
    if kafka["connected"]:
        state = "connected"
    elif kafka["outage_since"] is not None:
        state = f"UNREACHABLE since {_clock(kafka['outage_since'])}"
    else:
        state = "connecting"
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
            f"  {_fit(item['path'], path_width):<{path_width}} {bar(item['done'], item['size'])} "
            f"{human(item['done']):>9} / {human(item['size']):<9} {human(item['rate']) + '/s':>11}"
        )
    if status.get("in_flight_untracked"):
        lines.append(f"  ... and {status['in_flight_untracked']} more")
    lines += ["", f"COMPLETED (last {min(RECENT, len(status['completed']))} of {len(status['completed'])} kept)"]
    for item in status["completed"][:RECENT]:
        lines.append(
            f"  {_clock(item['finished'])} {_fit(item['path'], path_width):<{path_width}} {human(item['size']):>9} "
            f"{item['seconds']:7.2f} s  sha256 {item['sha256'][:16]}"
        )
    lines += ["", f"FAILED ({len(status['failed'])})"]
    for item in status["failed"][:RECENT]:
        lines.append(f"  {_clock(item['at'])} {_fit(item['path'], path_width)}: {item['reason']}")
    return lines


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3) :]
