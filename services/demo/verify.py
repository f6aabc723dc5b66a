"""Comparing a source tree with its mirror, byte for byte (by sha256, read in blocks)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

BLOCK = 4 * 1024 * 1024


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def tree_files(root: Path, *, include_hidden: bool = False) -> dict[str, Path]:
    """Regular files under ``root`` by relative POSIX path; hidden entries skipped unless asked for."""
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if not include_hidden and any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and not path.is_symlink():
            found[relative.as_posix()] = path
    return found


@dataclass
class Comparison:
    same: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (self.missing or self.different or self.extra)


def compare_trees(source: Path, mirror: Path) -> Comparison:
    """Every non-hidden source file must be in the mirror with the same bytes, and nothing else."""
    expected = tree_files(source)
    actual = tree_files(mirror)
    result = Comparison()
    for name, path in sorted(expected.items()):
        other = actual.get(name)
        if other is None:
            result.missing.append(name)
        elif other.stat().st_size != path.stat().st_size or file_sha256(other) != file_sha256(path):
            result.different.append(name)
        else:
            result.same.append(name)
    result.extra = sorted(set(actual) - set(expected))
    return result
