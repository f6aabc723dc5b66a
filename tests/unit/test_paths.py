from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamsend.shared.errors import UnsafePathError
from streamsend.shared.paths import (
    sanitize_uploader_name,
    to_wire_path,
    validate_uploader_name,
    validate_wire_path,
)

HOSTILE = {
    "": "empty path",
    "/etc/passwd": "absolute",
    "//server/share": "absolute",
    "../escape": "relative segment",
    "a/../../b": "relative segment",
    "a/./b": "relative segment",
    "a//b": "empty path segment",
    "a/b/": "empty path segment",
    "..\\..\\windows": "hidden segment",
    "up\\..\\..\\windows": "separator",
    "a\\b": "separator",
    "nul\x00byte": "control character",
    "tab\there": "control character",
    "new\nline": "control character",
    "esc\x1b[31m": "control character",
    "c1\x85control": "control character",
    ".hidden": "hidden segment",
    "dir/.streamsend/staging/x": "hidden segment",
    ".streamsend": "hidden segment",
    "x" * 256: "exceeds 255",
    "é" * 128: "exceeds 255",
    "/".join(["d"] * 129): "deeper than",
    "/".join(["d" * 200] * 16): "exceeds 3072",
    "bad\udcffutf8": "not valid UTF-8",
}


@pytest.mark.parametrize(("path", "why"), HOSTILE.items(), ids=[repr(p)[:30] for p in HOSTILE])
def test_hostile_paths_are_refused(path: str, why: str) -> None:
    with pytest.raises(UnsafePathError, match=why.replace("\\", "\\\\")):
        validate_wire_path(path)


@pytest.mark.parametrize(
    "path",
    ["a.txt", "photos/2024/été à Paris/plage 01.jpg", "データ/レポート.pdf", "🎵 mix (final).mp3", "x" * 255,
     "a/b/c/d", "name.with.dots", "trailing space ", "-dash", "a..b"],
)  # fmt: skip
def test_ordinary_paths_pass(path: str) -> None:
    assert validate_wire_path(path) == tuple(path.split("/"))


def test_to_wire_path_joins_segments_and_checks_them() -> None:
    assert to_wire_path(("a", "b c", "d.txt")) == "a/b c/d.txt"
    with pytest.raises(UnsafePathError):
        to_wire_path((".git", "config"))


@given(st.text(max_size=60))
def test_any_accepted_path_stays_inside_its_root(path: str) -> None:
    try:
        parts = validate_wire_path(path)
    except UnsafePathError:
        return
    root = PurePosixPath("/output/edge-1")
    joined = root.joinpath(*parts)
    assert joined.parts[: len(root.parts)] == root.parts
    assert ".." not in joined.parts and not any(p.startswith(".") for p in parts)


@pytest.mark.parametrize("name", ["edge-1", "POS_42", "a", "host.example.com", "x" * 64])
def test_valid_uploader_names(name: str) -> None:
    assert validate_uploader_name(name) == name


@pytest.mark.parametrize("name", ["", ".streamsend", "-x", "_x", "a/b", "..", "a b", "é", "x" * 65])
def test_invalid_uploader_names(name: str) -> None:
    with pytest.raises(UnsafePathError):
        validate_uploader_name(name)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("pos-terminal-07", "pos-terminal-07"), ("My Laptop (2)", "My-Laptop-2"), ("..hidden", "hidden"),
     ("été", "t"), ("", "uploader"), ("///", "uploader"), ("x" * 100, "x" * 64)],
)  # fmt: skip
def test_host_names_are_sanitised_into_valid_uploader_names(raw: str, clean: str) -> None:
    assert sanitize_uploader_name(raw) == clean
    validate_uploader_name(clean)
