"""The benchmark harness still runs end to end (on tiny sizes; it measures nothing here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.brokers import BROKERS, require_kafka

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", BROKERS)
def test_the_benchmark_harness_runs_and_writes_its_report(tmp_path: Path, kind: str) -> None:
    if kind == "kafka":
        require_kafka()
    root = Path(__file__).parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--broker", kind, "--results", str(tmp_path)],
        cwd=root, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [report] = tmp_path.glob(f"*-{kind}-smoke.md")
    text = report.read_text()
    assert ("- broker: Apache Kafka 3.9.1" if kind == "kafka" else "- broker: Tansu") in text
    assert ("### Transactional uploader" in text) == (kind == "kafka")
    for heading in (
        "1. Throughput",
        "2. Peak memory",
        "3. Many small files",
        "4. Latency",
        "5. Chunk size",
        "6. Sealed files",
    ):
        assert f"## {heading}" in text
    assert report.with_suffix(".png").stat().st_size > 10_000
