"""``streamsend keygen``: key pairs for sealed files, written as PEM files readable by their owner only."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from streamsend.shared import keys


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="streamsend keygen",
        description="Write a recipient key pair (X25519: a downloader's decrypt_key, and the public key uploaders"
        " list in encrypt_to) and a signer key pair (Ed25519: an uploader's signing_key, and the public key"
        " downloaders list in trusted_uploaders). Existing files are never overwritten.",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write the keys into")
    parser.add_argument(
        "--prefix",
        default="",
        metavar="TEXT",
        help="put in front of each file name (e.g. till-4- for till-4-signer.key)",
    )
    args = parser.parse_args(list(argv))
    if "/" in args.prefix:
        parser.error("--prefix is part of a file name: no '/'")
    try:
        written = keys.generate(args.out, args.prefix)
    except (FileExistsError, OSError) as exc:
        print(f"streamsend keygen: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    for path in written[2:]:
        public = keys.load_public(path)
        role = "recipient (encrypt_to)" if path.name.endswith(keys.RECIPIENT_PUB) else "signer (trusted_uploaders)"
        print(f"\n{role}, key id {keys.key_id(public)}:\n{path.read_text().strip()}")
    return 0
