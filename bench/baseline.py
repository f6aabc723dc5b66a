"""The baseline: a plain aiokafka producer process and a plain aiokafka consumer process, moving a number of
records of one size through a topic with acks=all. It is the limit of client plus broker on this machine.

    python -m bench.baseline consume BOOTSTRAP TOPIC RECORDS PARTITIONS
    python -m bench.baseline produce BOOTSTRAP TOPIC RECORDS RECORD_SIZE PARTITION|spread

Each prints one JSON line: the wall-clock times of its first and last record, and its peak RSS.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import deque

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

IN_FLIGHT = 64  # records awaited at once: enough to keep every connection busy


def peak_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


async def produce(bootstrap: str, topic: str, records: int, size: int, partition: str) -> dict[str, float]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_request_size=max(size + 16_384, 1_048_576), linger_ms=5,
        max_batch_size=256 * 1024,
    )  # fmt: skip
    await producer.start()
    payload = os.urandom(size)
    pending: deque[asyncio.Future[object]] = deque()
    started = time.time()
    for index in range(records):
        target = index % 6 if partition == "spread" else int(partition)
        pending.append(await producer.send(topic, payload, key=str(index).encode(), partition=target))
        if len(pending) >= IN_FLIGHT:
            await pending.popleft()
    await asyncio.gather(*pending)
    finished = time.time()
    await producer.stop()
    return {"started": started, "finished": finished}


async def consume(bootstrap: str, topic: str, records: int, partitions: int) -> dict[str, float]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
        fetch_max_bytes=16 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024,
    )  # fmt: skip
    await consumer.start()
    assigned = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(assigned)
    await consumer.seek_to_beginning(*assigned)
    print(json.dumps({"ready": True}), flush=True)
    seen = 0
    first = last = 0.0
    while seen < records:
        batch = await consumer.getmany(timeout_ms=1000)
        for batch_records in batch.values():
            if batch_records and not first:
                first = time.time()
            seen += len(batch_records)
        last = time.time()
    await consumer.stop()
    return {"first": first, "finished": last}


def main(argv: list[str]) -> None:
    role, bootstrap, topic, records = argv[0], argv[1], argv[2], int(argv[3])
    if role == "produce":
        result = asyncio.run(produce(bootstrap, topic, records, int(argv[4]), argv[5]))
    else:
        result = asyncio.run(consume(bootstrap, topic, records, int(argv[4])))
    result["peak_rss"] = peak_rss_bytes()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
