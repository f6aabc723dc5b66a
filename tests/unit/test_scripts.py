"""The README's commands themselves, where they can be run in a moment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_help_answers_at_once_without_installing_anything() -> None:
    """No package index may be reached: a run of pip would fail, so the help must come without one."""
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(ROOT / "no-such-folder")}
    done = subprocess.run(
        [ROOT / "scripts" / "demo", "--help"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: streamsend demo") and "--broker {tansu,kafka}" in done.stdout
