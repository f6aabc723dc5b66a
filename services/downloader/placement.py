"""Publication's file work: a verified staging file renamed into the mirrored tree, inside the output root,
with its mtime and its sha256 (in an attribute); folders made on the way, symlinks and files in the way refused.

    <output_dir>/<uploader>/<relative path>      published files, only ever by rename
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from streamsend.shared.errors import PublishError

# Every published file carries its verified sha256 here: users can check it, and a file received again
# identical to the published one is recognised without reading it.
SHA256_ATTRIBUTE = "user.streamsend.sha256"
# ... and the mtime of the version published (the file's own mtime may be changed by its users): an upload of
# an older version (late, or replayed by someone with write access to the topic) never replaces it.
MTIME_ATTRIBUTE = "user.streamsend.mtime-ns"


class NewerThere(Exception):  # an outcome, not a fault
    """The target is a newer version of the file than the one to publish: it stays as it is."""


class Placement:
    """The rename of a verified file into the tree, and the folders on its way; owned by the Store, called from
    the Publisher's worker thread."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def target(self, uploader: str, parts: Sequence[str]) -> Path:
        return self.root.joinpath(uploader, *parts)

    def place(self, source: Path, target: Path, mtime_ns: int, sha256: str, *, sync_folders: bool) -> Path | None:
        """Rename a verified staging file to its target (in a worker thread); returns the target's folder.

        None when the target already is this very file (same size and mtime, and the sha256 recorded when it
        was published): the staging file is removed and the target left untouched, so that a file its
        uploader sent again (it died before it could remember sending it) is not published a second time.
        NewerThere when the target is a newer version (by the source's mtime): the staging file is removed.
        """
        if _already_there(target, source, mtime_ns, sha256):
            source.unlink()
            return None
        if _newer_there(target, mtime_ns):
            source.unlink()
            raise NewerThere(target)
        with contextlib.suppress(OSError):  # a filesystem without user attributes: always replaced
            os.setxattr(source, SHA256_ATTRIBUTE, sha256.encode())
            os.setxattr(source, MTIME_ATTRIBUTE, str(mtime_ns).encode())
        os.utime(source, ns=(mtime_ns, mtime_ns))
        parent = self._make_folders(target.parent, sync_new=sync_folders)
        try:
            if stat.S_ISDIR(target.lstat().st_mode):
                raise PublishError(f"a folder is in the way at {target.relative_to(self.root)}")
        except FileNotFoundError:
            pass
        source.rename(target)
        return parent

    def _make_folders(self, folder: Path, *, sync_new: bool) -> Path:
        """Create the folders down to ``folder`` inside the root, refusing symlinks and files in the way."""
        current = self.root
        for part in folder.relative_to(self.root).parts:
            current = current / part
            try:
                current.mkdir()
            except FileExistsError:
                pass  # there already, perhaps made a moment ago by another partition: checked below
            else:
                if sync_new:
                    fsync_dir(current.parent)
                continue
            mode = current.lstat().st_mode
            if not stat.S_ISDIR(mode):
                kind = "symlink" if stat.S_ISLNK(mode) else "file"
                raise PublishError(f"a {kind} is in the way at {current.relative_to(self.root)}")
        return current


def _newer_there(target: Path, mtime_ns: int) -> bool:
    """Whether the target is a published file of a later version than ``mtime_ns``."""
    try:
        st = target.lstat()
        if not stat.S_ISREG(st.st_mode):
            return False
        try:
            published = int(os.getxattr(target, MTIME_ATTRIBUTE, follow_symlinks=False))
        except (OSError, ValueError):
            published = st.st_mtime_ns  # published before the attribute existed, or no user attributes here
    except OSError:  # nothing there, or a file in the way of a folder (refused on the way)
        return False
    return published > mtime_ns


def _already_there(target: Path, source: Path, mtime_ns: int, sha256: str) -> bool:
    try:
        st = target.lstat()  # mostly there is no target: the staging file is not even looked at
        if not stat.S_ISREG(st.st_mode) or st.st_mtime_ns != mtime_ns:
            return False
        same = os.getxattr(target, SHA256_ATTRIBUTE, follow_symlinks=False) == sha256.encode()
        return same and st.st_size == source.stat().st_size
    except OSError:
        return False


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
