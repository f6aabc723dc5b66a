"""The example in docs/ runs as written: the insurer's service sends a policy PDF with its updateEvent, and a
consumer of the event waits for the PDF's arrival and reads the verified file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "insurer.py"


def test_the_insurers_example_runs() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("sent policies/4711/policy.pdf: 1048585 bytes, sha256 ")
    assert lines[1] == "got updateEvent for policy 4711: waiting for insurer/policies/4711/policy.pdf"
    assert lines[2].startswith("insurer/policies/4711/policy.pdf arrived (published): 1048585 bytes")
    assert lines[0].split("sha256 ")[1].split(",")[0] == lines[2].split("sha256 ")[1]
