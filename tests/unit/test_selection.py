from __future__ import annotations

import re
from pathlib import Path

from streamsend.uploader.selection import select
from streamsend.uploader.settings import UploaderSettings

ALL = re.compile(".*")


def test_plain_files_are_selected_with_their_wire_path() -> None:
    verdict = select(("photos", "été", "a b.jpg"), ALL)
    assert verdict.wire_path == "photos/été/a b.jpg"


def test_hidden_files_and_folders_are_skipped_quietly() -> None:
    for parts in [(".hidden",), (".git", "config"), ("a", ".cache", "x")]:
        verdict = select(parts, ALL)
        assert verdict.wire_path is None and verdict.reason == "hidden" and not verdict.report


def test_the_pattern_must_match_the_whole_file_name() -> None:
    pattern = re.compile(r".*\.csv")
    assert select(("in", "data.csv"), pattern).wire_path == "in/data.csv"
    assert select(("in", "data.csv.tmp"), pattern).wire_path is None
    assert select(("csv", "notes.txt"), pattern).wire_path is None  # folders are not matched


def test_names_the_downloader_would_refuse_are_reported() -> None:
    for parts in [("back\\slash",), ("ctrl\x07",), ("bad\udcff",)]:
        verdict = select(parts, ALL)
        assert verdict.wire_path is None and verdict.report


def test_a_name_with_a_newline_is_reported_as_one_that_cannot_be_sent_not_skipped_quietly(tmp_path: Path) -> None:
    default = UploaderSettings(input_dir=tmp_path).pattern
    verdict = select(("till", "z-report\n2026.txt"), default)
    assert verdict.wire_path is None and verdict.report, verdict
    assert "control character" in verdict.reason or "cannot be sent" in verdict.reason
