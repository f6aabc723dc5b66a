"""``streamsend status [--url URL] [--watch]``: fetch a daemon's ``/status`` and print it."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from streamsend.status.render import render

DEFAULT_URL = "http://127.0.0.1:9100"
CLEAR = "\x1b[H\x1b[2J"


def status_url(url: str) -> str:
    """The ``/status`` address of a daemon given as a URL, or as plain ``host:port``."""
    if "://" not in url:
        url = f"http://{url}"
    return f"{url.rstrip('/')}/status"


def fetch(url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    with urllib.request.urlopen(status_url(url), timeout=timeout_s) as response:
        document: dict[str, Any] = json.load(response)
    return document


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="streamsend status", description="Show what a running uploader or downloader is moving."
    )
    parser.add_argument(
        "--url", metavar="URL", default=os.environ.get("STREAMSEND_STATUS_URL", DEFAULT_URL),
        help=f"the daemon's metrics port (default: {DEFAULT_URL}) [env: STREAMSEND_STATUS_URL]",
    )  # fmt: skip
    parser.add_argument("--watch", action="store_true", help="refresh until interrupted")
    parser.add_argument("--interval", type=float, default=1.0, metavar="SECONDS", help="refresh period (default: 1)")
    args = parser.parse_args(list(argv))
    try:
        while True:
            try:
                lines = render(fetch(args.url), shutil.get_terminal_size().columns)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                print(f"streamsend status: no answer from {status_url(args.url)}: {exc}", file=sys.stderr)
                if not args.watch:
                    return 1
                lines = []
            if args.watch and sys.stdout.isatty():
                sys.stdout.write(CLEAR)
            print("\n".join(lines), flush=True)
            if not args.watch:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
