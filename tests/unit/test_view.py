from __future__ import annotations

import json

from streamsend.shared.view import MAX_IN_FLIGHT_SHOWN, TransferView
from streamsend.status.app import status_url
from streamsend.status.render import bar, columns, human, render
from tests.support.clock import Clock


def _view(history: int = 3) -> tuple[TransferView, Clock]:
    clock = Clock(1000.0)
    return TransferView("downloader", history, clock=clock, wall=lambda: 1_800_000_000 + clock.now), clock


def test_a_transfer_moves_from_in_flight_to_completed_with_rate_and_duration() -> None:
    view, clock = _view()
    view.start("u1", "edge-1/video.mp4", 4_000_000)
    clock.now += 2
    view.progress("u1", 1_000_000)
    [moving] = view.snapshot()["in_flight"]
    assert moving == {"path": "edge-1/video.mp4", "size": 4_000_000, "done": 1_000_000, "rate": 500_000,
                      "started": 1_800_001_000.0}  # fmt: skip
    clock.now += 6
    view.completed("u1", "edge-1/video.mp4", 4_000_000, "ab" * 32)
    status = view.snapshot()
    assert status["in_flight"] == []
    assert status["completed"] == [{"path": "edge-1/video.mp4", "size": 4_000_000, "sha256": "ab" * 32,
                                    "seconds": 8.0, "finished": 1_800_001_008.0}]  # fmt: skip
    assert status["totals"] == {"files": 1, "bytes": 4_000_000, "failed": 0}
    json.dumps(status)  # the document is JSON as it is


def test_histories_keep_the_newest_n_first_whatever_the_number_of_files() -> None:
    view, _ = _view(history=3)
    for index in range(10_000):
        view.completed(f"u{index}", f"f{index}", 1, "00")
        view.failed(None, f"bad{index}", "checksum")
    status = view.snapshot()
    assert [c["path"] for c in status["completed"]] == ["f9999", "f9998", "f9997"]
    assert [f["path"] for f in status["failed"]] == ["bad9999", "bad9998", "bad9997"]
    assert status["totals"] == {"files": 10_000, "bytes": 10_000, "failed": 10_000}


def test_in_flight_is_bounded_and_the_rest_counted() -> None:
    view, _ = _view()
    for index in range(MAX_IN_FLIGHT_SHOWN + 5):
        view.start(f"u{index}", f"f{index}", 10)
    status = view.snapshot()
    assert len(status["in_flight"]) == MAX_IN_FLIGHT_SHOWN and status["in_flight_untracked"] == 5
    view.abandoned(f"u{MAX_IN_FLIGHT_SHOWN + 1}")  # one of the untracked ends
    view.abandoned("u0")
    status = view.snapshot()
    assert len(status["in_flight"]) == MAX_IN_FLIGHT_SHOWN - 1 and status["in_flight_untracked"] == 4


def test_a_failure_ends_its_transfer_and_is_listed_with_its_reason() -> None:
    view, _ = _view()
    view.start("u1", "edge-1/a.pdf", 10)
    view.failed("u1", "edge-1/a.pdf", "quarantined: verification failed")
    status = view.snapshot()
    assert status["in_flight"] == [] and status["failed"][0]["reason"] == "quarantined: verification failed"


def test_kafka_state_and_lag() -> None:
    view, clock = _view()
    view.address, view.last_error = "kafka-1:9092", lambda: "KafkaConnectionError: refused"
    base = {"address": "kafka-1:9092", "error": None}
    assert view.snapshot()["kafka"] == {"connected": False, "outage_since": None, "lag": {}, **base}
    view.connected()
    view.lag(3, 12)
    view.lag(0, 0)
    assert view.snapshot()["kafka"] == {"connected": True, "outage_since": None, "lag": {"0": 0, "3": 12}, **base}
    clock.now += 1
    view.outage(True)
    view.lag(3, None)
    assert view.snapshot()["kafka"] == {
        "connected": False, "outage_since": 1_800_001_001.0, "lag": {"0": 0}, "address": "kafka-1:9092",
        "error": "KafkaConnectionError: refused",
    }  # fmt: skip
    assert "Kafka UNREACHABLE at kafka-1:9092 since" in render(view.snapshot())[0]
    assert render(view.snapshot())[0].endswith("(KafkaConnectionError: refused), lag p0 0")
    view.outage(False)
    assert view.snapshot()["kafka"]["connected"]


def test_the_terminal_table_shows_progress_bars_recent_files_and_failures() -> None:
    view, clock = _view()
    view.name = "mirror"
    view.connected()
    view.start("u1", "edge-1/video/big.bin", 300_000_000)
    clock.now += 3
    view.progress("u1", 150_000_000)
    view.completed("u2", "edge-1/small.txt", 120, "cd" * 32)
    view.failed(None, "edge-1/bad.bin", "quarantined: verification failed")
    text = "\n".join(render(view.snapshot()))
    assert "Streamsend downloader mirror - Kafka connected" in text
    assert "edge-1/video/big.bin" in text and "[############............]  50%" in text
    assert "150.0 MB / 300.0 MB" in text and "50.0 MB/s" in text
    assert "edge-1/small.txt" in text and "sha256 cdcdcdcdcdcdcdcd" in text
    assert "edge-1/bad.bin: quarantined: verification failed" in text


def test_bars_and_sizes() -> None:
    assert bar(0, 0) == "[########################] 100%"
    assert bar(1, 4, width=4) == "[#...]  25%"
    assert (human(999), human(1500), human(2_500_000_000)) == ("999 B", "1.5 KB", "2.5 GB")


def test_wide_names_keep_the_columns_aligned() -> None:
    view, clock = _view()
    for key, name in (("a", "edge-1/plain.bin"), ("b", "edge-1/請求書/保険証券.pdf"), ("c", "edge-1/🧾 receipt.pdf")):
        view.start(key, name, 1000)
    clock.now += 1
    lines = [line for line in render(view.snapshot(), width=100) if "[" in line and "%" in line]
    assert len(lines) == 3
    assert len({columns(line[: line.index("[")]) for line in lines}) == 1  # the bars start in one column
    long = "edge-1/" + "長い名前" * 30
    document = {**view.snapshot(), "in_flight": [{**view.snapshot()["in_flight"][0], "path": long}]}
    assert columns(render(document, width=140)[4]) <= 140  # cut to its end, counted in columns


def test_status_takes_a_plain_host_and_port() -> None:
    assert status_url("127.0.0.1:9464") == "http://127.0.0.1:9464/status"
    assert status_url("https://mirror.example/") == "https://mirror.example/status"
