"""``streamsend send FILE...``: send files once and exit, for scripts and cron jobs that want no daemon.

The same settings as the uploader (flags, ``STREAMSEND_*`` variables, ``--config``) and the same machinery
(``streamsend.api.Uploader``): chunking, retries, sealing, state records. A file under ``input_dir`` keeps its
path below it at the target, any other its own name; ``--name`` names the target of a single file. Progress goes
to the log (stderr); one receipt per file acknowledged goes to stdout, a line of text or (``--json``) of JSON.
Exit code 0 once every file is acknowledged, 1 if one could not be sent, 2 for bad settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from streamsend.api import Receipt, Uploader
from streamsend.shared import lifecycle, logs
from streamsend.shared.errors import SettingsError, StreamsendError
from streamsend.shared.settings import load_settings_and_arguments
from streamsend.uploader.settings import UploaderSettings

log = logging.getLogger(__name__)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files to send")
    parser.add_argument("--name", metavar="PATH", help="the path at the target of the single FILE given")
    parser.add_argument("--json", action="store_true", help="receipts as JSON lines on stdout")


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    given = "--input-dir" in args or any(a.startswith("--input-dir=") for a in args)
    if not given and "STREAMSEND_INPUT_DIR" not in os.environ:
        args = ["--input-dir", str(Path.cwd()), *args]  # names are relative to it; nothing watches it here
    try:
        settings, extra = load_settings_and_arguments(
            UploaderSettings, args, "streamsend send", _arguments, description=__doc__
        )
        if extra["name"] is not None and len(extra["files"]) != 1:
            raise SettingsError("invalid setting name: --name names the target of a single FILE")
        settings.sealer()  # key files readable, before anything starts
    except SettingsError as exc:
        for line in str(exc).splitlines():
            print(f"streamsend send: {line}", file=sys.stderr)
        return lifecycle.EXIT_SETTINGS
    logs.configure(settings.log_level, settings.log_format, "stms-send")
    failed: list[Path] = []

    async def send_all(stop: asyncio.Event) -> None:
        async with Uploader(settings) as uploader:
            for source in extra["files"]:
                if stop.is_set():
                    failed.append(source)
                    continue
                try:
                    receipt = await uploader.send(source, extra["name"] or _name(source, settings.input_dir))
                except (StreamsendError, OSError) as exc:
                    log.error("%s: not sent: %s", source, exc)
                    failed.append(source)
                    continue
                print(_shown(receipt, as_json=extra["json"]), flush=True)

    code = lifecycle.run(send_all, grace_s=settings.shutdown_grace)
    return code if code != lifecycle.EXIT_OK else (1 if failed else 0)


def _name(source: Path, input_dir: Path) -> str:
    """Its path below ``input_dir``, if it is there; else its own name."""
    try:
        return source.resolve().relative_to(input_dir.resolve()).as_posix()
    except ValueError:
        return source.name


def _shown(receipt: Receipt, *, as_json: bool) -> str:
    if as_json:
        return json.dumps(receipt.as_dict(), separators=(",", ":"))
    return (
        f"{receipt.uploader}/{receipt.path}: {receipt.size} bytes, sha256 {receipt.sha256}, upload {receipt.upload_id},"
        f" {receipt.chunks} chunks to {receipt.topic} partition {receipt.partition}"
    )
