"""Files alongside events, end to end: an insurer's ``updatePolicy`` service sends the new policy PDF with its
``updateEvent``; a consumer of those events waits for the PDF's arrival and reads the verified file.

    python docs/examples/insurer.py            # an embedded broker and a downloader, started here
    python docs/examples/insurer.py HOST:PORT  # an existing broker (topics are created as needed)

Needs the embedded broker (``pip install streamsend[demo]``) when no broker is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from prometheus_client import CollectorRegistry

import streamsend
from streamsend.downloader import app as downloader
from streamsend.downloader.settings import DownloaderSettings

CHUNKS, EVENTS, ARRIVALS = "insurer-files", "policy-events", "insurer-arrivals"


async def update_policy(bootstrap: str, work: Path) -> str:
    """The insurer's service: a new policy PDF, and the event that tells of it."""
    pdf = work / "policy-4711.pdf"
    pdf.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 4096)  # about a megabyte of "policy"
    target = "policies/4711/policy.pdf"
    event = {"type": "updateEvent", "policy": 4711, "document": f"insurer/{target}"}
    async with streamsend.Uploader(bootstrap_servers=bootstrap, topic=CHUNKS, uploader_name="insurer",
                                   state_topic="insurer-state") as uploader:  # fmt: skip
        receipt = await uploader.send(
            pdf, name=target, event=streamsend.Event(EVENTS, json.dumps(event).encode(), key=b"4711")
        )
    print(f"sent {receipt.path}: {receipt.size} bytes, sha256 {receipt.sha256}, upload {receipt.upload_id}")
    return receipt.sha256


async def on_update_event(bootstrap: str, mirror: Path) -> bytes:
    """A consumer of policy events: it reads the updateEvent, waits for its document, and reads it."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(EVENTS, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await consumer.getone()
    finally:
        await consumer.stop()
    event = json.loads(record.value)
    print(f"got {event['type']} for policy {event['policy']}: waiting for {event['document']}")
    async with streamsend.Arrivals(bootstrap, ARRIVALS) as arrivals:
        arrival = await arrivals.wait_for(output_path=event["document"], timeout_s=120)
    assert arrival.arrived, arrival.reason
    document = (mirror / arrival.output_path).read_bytes()
    assert hashlib.sha256(document).hexdigest() == arrival.sha256
    print(f"{arrival.output_path} arrived ({arrival.outcome}): {len(document)} bytes, sha256 {arrival.sha256}")
    return document


async def main(bootstrap: str | None) -> None:
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
        if bootstrap is None:
            from streamsend.demo.broker import EmbeddedBroker

            bootstrap = stack.enter_context(EmbeddedBroker()).bootstrap
        work, mirror = Path(folder) / "work", Path(folder) / "mirror"
        work.mkdir()
        mirror.mkdir()
        settings = DownloaderSettings(
            bootstrap_servers=bootstrap, topic=CHUNKS, output_dir=mirror, group_id="insurer-mirror",
            events_topic=ARRIVALS, min_free_space=0, session_timeout=2, heartbeat_interval=0.5,
        )  # fmt: skip
        stop = asyncio.Event()
        mirroring = asyncio.create_task(downloader.run(settings, stop, CollectorRegistry()))
        try:
            sha256 = await update_policy(bootstrap, work)
            document = await on_update_event(bootstrap, mirror)
            assert hashlib.sha256(document).hexdigest() == sha256
        finally:
            stop.set()
            await mirroring


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
