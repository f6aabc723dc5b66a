"""The demo's sample tree: nested folders, unicode and spaces, an empty file, chunk boundaries, a big file,
and hidden entries that must not arrive."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BLOCK = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SampleFile:
    path: str
    size: int
    note: str
    hidden: bool = False


def sample_plan(chunk_size: int, big_size: int) -> list[SampleFile]:
    return [
        SampleFile("README.txt", 0, "a text file"),
        SampleFile("empty.txt", 0, "an empty file"),
        SampleFile("boundaries/one-chunk.bin", chunk_size, "exactly one chunk"),
        SampleFile("boundaries/one-chunk-minus-one.bin", chunk_size - 1, "one byte short of a chunk"),
        SampleFile("boundaries/one-chunk-plus-one.bin", chunk_size + 1, "one byte over a chunk"),
        SampleFile("boundaries/two-chunks.bin", 2 * chunk_size, "exactly two chunks"),
        SampleFile("photos/2024/été à Paris/plage 01.jpg", 1_500_000, "unicode and spaces"),
        SampleFile("photos/2024/été à Paris/plage 02.jpg", 2_250_000, "unicode and spaces"),
        SampleFile("documents/データ/レポート 第1四半期.pdf", 300_000, "Japanese names"),
        SampleFile("music/🎵 mix (final).mp3", 3_000_000, "emoji and brackets"),
        SampleFile("deep/a/b/c/d/e/f/g/h/deep.txt", 4_096, "nine folders deep"),
        SampleFile("video/recording.bin", big_size, "the big one"),
        SampleFile(".cache/thumbnails.db", 10_000, "hidden folder", hidden=True),
        SampleFile("photos/.DS_Store", 6_148, "hidden file", hidden=True),
    ]


def write_sample(root: Path, plan: list[SampleFile]) -> None:
    """Random content (text for README.txt), written in blocks: memory stays small whatever the size."""
    for item in plan:
        path = root / item.path
        path.parent.mkdir(parents=True, exist_ok=True)
        if item.path == "README.txt":
            path.write_text("Streamsend demo: every file in this tree is streamed through Kafka and verified.\n")
            continue
        with path.open("wb") as out:
            left = item.size
            while left > 0:
                block = os.urandom(min(BLOCK, left))
                out.write(block)
                left -= len(block)
