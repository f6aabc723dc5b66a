from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal

import pytest

from streamsend.shared import lifecycle, logs
from streamsend.shared.errors import SettingsError
from streamsend.shared.retry import Backoff, Outage


def _record(message: str) -> logging.LogRecord:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, message, None, None)
    record.worker = "stms-upl-1"
    return record


def test_text_lines_have_the_familiar_shape() -> None:
    line = logs.TextFormatter().format(_record("video.avi: 100 bytes, creating 1 100-byte chunks"))
    assert re.fullmatch(
        r"\[\d{8} \d\d:\d\d:\d\d\.\d{3}\] INFO \[stms-upl-1\] video\.avi: 100 bytes, creating 1 100-byte chunks", line
    )


def test_json_lines_are_one_object_each() -> None:
    entry = json.loads(logs.JsonFormatter().format(_record("été ✓")))
    assert entry["message"] == "été ✓" and entry["worker"] == "stms-upl-1" and entry["level"] == "INFO"


def test_backoff_grows_to_its_cap() -> None:
    backoff = Backoff(initial_s=0.1, max_s=1.0)
    delays = [backoff.next_delay() for _ in range(10)]
    assert delays[0] <= 0.1 and max(delays) <= 1.0 and delays[-1] >= 0.5
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_an_outage_is_logged_once_with_its_duration(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    now = [0.0]
    changes: list[bool] = []
    outage = Outage("Kafka", on_change=changes.append, clock=lambda: now[0])
    for _ in range(5):
        outage.failed(ConnectionRefusedError("refused"))
    now[0] = 63.2
    outage.succeeded()
    outage.succeeded()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "Kafka unavailable (ConnectionRefusedError: refused): retrying until it is back",
        "Kafka back after an outage of 63.2 s (5 retries)",
    ]
    assert changes == [True, False]


async def test_first_signal_stops_gracefully_with_exit_0() -> None:
    finished: list[str] = []

    async def main(stop: asyncio.Event) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        await stop.wait()
        finished.append("drained")

    assert await lifecycle.supervise(main, grace_s=5) == lifecycle.EXIT_OK
    assert finished == ["drained"]


async def test_a_second_signal_cancels_in_flight_work() -> None:
    async def main(stop: asyncio.Event) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        await stop.wait()
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(30)

    assert await lifecycle.supervise(main, grace_s=30) == lifecycle.EXIT_OK


async def test_the_grace_period_bounds_the_drain() -> None:
    async def main(stop: asyncio.Event) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(30)

    assert await lifecycle.supervise(main, grace_s=0.1) == lifecycle.EXIT_OK


async def test_a_crash_exits_1_and_a_settings_error_exits_2() -> None:
    async def crash(stop: asyncio.Event) -> None:
        raise RuntimeError("boom")

    async def bad_settings(stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(asyncio.sleep(10))
            raise SettingsError("invalid setting chunk_size: too big")

    assert await lifecycle.supervise(crash, grace_s=1) == lifecycle.EXIT_CRASH
    assert await lifecycle.supervise(bad_settings, grace_s=1) == lifecycle.EXIT_SETTINGS


async def test_next_or_stop() -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    stop = asyncio.Event()
    queue.put_nowait(1)
    assert await lifecycle.next_or_stop(queue, stop) == 1
    asyncio.get_running_loop().call_later(0.01, stop.set)
    assert await lifecycle.next_or_stop(queue, stop) is None
    queue.put_nowait(2)
    assert await lifecycle.next_or_stop(queue, stop) is None
    assert queue.qsize() == 1


def test_tls_runs_on_asyncio_loop_and_the_rest_on_uvloop() -> None:
    import uvloop

    from streamsend.shared.lifecycle import _loop_factory

    assert _loop_factory(tls=True) is None  # uvloop's TLS close can spin until the peer's EOF
    assert _loop_factory(tls=False) is uvloop.new_event_loop


async def test_a_second_signal_also_cuts_short_a_clean_up_that_waits_on_the_network() -> None:
    """As a Kafka client's stop waits for a broker that does not answer: the first cancellation lands in the
    wait for the work, the clean-up then waits again; the second signal must end that wait too."""
    cleaned: list[str] = []

    async def main(stop: asyncio.Event) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        await stop.wait()
        try:
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(300)
        finally:
            try:
                await asyncio.sleep(300)  # a stop() towards a hung broker
            finally:
                cleaned.append("closed without waiting")

    assert await asyncio.wait_for(lifecycle.supervise(main, grace_s=300), 30) == lifecycle.EXIT_OK
    assert cleaned == ["closed without waiting"]


def test_json_lines_carry_the_fields_of_the_file_they_are_about() -> None:
    record = _record("video.avi (00002 of 00096) chunk uploaded")
    for name, value in logs.fields(uploader="till-4", file="video.avi", chunk=2, chunks=96, bytes=2048).items():
        setattr(record, name, value)
    entry = json.loads(logs.JsonFormatter().format(record))
    assert {k: entry[k] for k in ("uploader", "file", "chunk", "chunks", "bytes")} == {
        "uploader": "till-4", "file": "video.avi", "chunk": 2, "chunks": 96, "bytes": 2048,
    }  # fmt: skip
    assert "upload_id" not in entry  # absent fields are left out, not null


def test_each_daemon_names_its_own_main_lines(capsys: pytest.CaptureFixture[str]) -> None:
    async def speak() -> None:
        logs.configure("INFO", "text", "stms-dnl")
        logging.getLogger("streamsend.test").info("Received SIGTERM")

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        asyncio.run(speak())
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert "INFO [stms-dnl] Received SIGTERM" in capsys.readouterr().err


def test_an_outage_names_the_address_it_tried(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    outage = Outage("Kafka", where="kafka-1.example:9093,kafka-2.example:9093")
    outage.failed(ConnectionRefusedError("refused"))
    assert caplog.records[-1].getMessage() == (
        "Kafka unavailable at kafka-1.example:9093,kafka-2.example:9093 (ConnectionRefusedError: refused):"
        " retrying until it is back"
    )
