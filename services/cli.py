"""The ``streamsend`` command: ``uploader``, ``downloader``, ``send``, ``demo``, ``status`` and ``keygen``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from streamsend import __version__

USAGE = f"""usage: streamsend <command> [options]

Streamsend {__version__}: stream files of any size through a Kafka topic, verified end to end.

commands:
  uploader     watch a folder tree and stream every static file to the topic
  downloader   rebuild files from the topic into a mirrored, verified tree
  send         send files once and exit (the uploader's settings), printing a receipt for each
  demo         run an embedded broker, an uploader and a downloader on a generated sample tree
  status       show what a running uploader or downloader is moving (its metrics port's /status)
  keygen       write key pairs for sealed files: a downloader's (X25519) and an uploader's (Ed25519)

Run `streamsend <command> --help` for the command's settings."""


def _uploader(argv: Sequence[str]) -> int:
    from streamsend.uploader.app import main

    return main(argv)


def _downloader(argv: Sequence[str]) -> int:
    from streamsend.downloader.app import main

    return main(argv)


def _send(argv: Sequence[str]) -> int:
    from streamsend.send import main

    return main(argv)


def _demo(argv: Sequence[str]) -> int:
    from streamsend.demo.app import main

    return main(argv)


def _status(argv: Sequence[str]) -> int:
    from streamsend.status.app import main

    return main(argv)


def _keygen(argv: Sequence[str]) -> int:
    from streamsend.keygen import main

    return main(argv)


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "uploader": _uploader,
    "downloader": _downloader,
    "send": _send,
    "demo": _demo,
    "status": _status,
    "keygen": _keygen,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] == "--version":
        print(f"streamsend {__version__}")
        return 0
    command = COMMANDS.get(args[0])
    if command is None:
        print(f"streamsend: unknown command {args[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    return command(args[1:])
