"""The WAN stand-in (streamsend.demo.relay) on loopback, without Kafka: what crosses it arrives intact in both
directions, across a delayed and rate-capped link too, and it counts Kafka requests in flight. (How long a
crossing takes is the benchmark's to measure, never a test's.)"""

from __future__ import annotations

import asyncio
import os
import random
import struct

from streamsend.demo.broker import free_port
from streamsend.demo.relay import PRODUCE, Frames, Link, Relay
from tests.support.waiting import wait_until


def _frame(api_key: int, body: bytes = b"") -> bytes:
    """A Kafka request: size, API key, version, correlation id, then its body (responses look alike)."""
    payload = struct.pack(">hhi", api_key, 0, 7) + body
    return struct.pack(">i", len(payload)) + payload


def test_frames_are_found_however_the_bytes_are_cut() -> None:
    stream = b"".join(_frame(key, os.urandom(size)) for key, size in [(0, 100), (3, 0), (0, 70_000), (18, 5)])
    rng = random.Random(7)
    for _ in range(20):
        frames, keys, at = Frames(), [], 0
        while at < len(stream):
            step = rng.randrange(1, 9000)
            keys += frames.feed(stream[at : at + step])
            at += step
        assert keys == [0, 3, 0, 18]


async def test_bytes_cross_a_slow_far_link_intact_both_ways() -> None:
    payload = os.urandom(3 * 1024 * 1024)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        writer.close()

    target = free_port()
    server = await asyncio.start_server(echo, "127.0.0.1", target)
    with Relay(free_port(), target, link=Link(rtt_s=0.02, rate_bytes_s=50e6)) as relay:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.listen_port)

        async def send() -> None:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()

        sending = asyncio.create_task(send())
        back = await asyncio.wait_for(reader.readexactly(len(payload)), 60)
        await sending
        writer.close()
        assert back == payload
        assert relay.stats.bytes_up == relay.stats.bytes_down == len(payload) and relay.stats.connections == 1
    server.close()
    await server.wait_closed()


async def test_produce_requests_in_flight_are_counted_over_every_connection() -> None:
    answer = asyncio.Event()
    answered: list[int] = []

    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frames = Frames()
        while data := await reader.read(1 << 16):
            for key in frames.feed(data):
                await answer.wait()  # every request waits: they pile up on the line
                writer.write(_frame(key, b"answer"))
                answered.append(key)
            await writer.drain()
        writer.close()

    target = free_port()
    server = await asyncio.start_server(broker, "127.0.0.1", target)
    with Relay(free_port(), target, link=Link(rtt_s=0.01)) as relay:
        clients = [await asyncio.open_connection("127.0.0.1", relay.listen_port) for _ in range(2)]
        for _reader, writer in clients:
            writer.write(_frame(PRODUCE, os.urandom(1000)) * 2 + _frame(3))  # two produce requests, a metadata one
            await writer.drain()

        await wait_until(lambda: relay.stats.requests == 6, 10, "the six requests")
        assert relay.stats.max_produce_in_flight == 4 and relay.stats.produce_in_flight == 4
        answer.set()
        for reader, _writer in clients:
            for _ in range(3):
                size = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), 30))[0]
                await reader.readexactly(size)
        assert relay.stats.responses == 6 and relay.stats.produce_in_flight == 0
        assert relay.stats.max_produce_in_flight == 4
        for _reader, writer in clients:
            writer.close()
    server.close()
    await server.wait_closed()


def test_a_stream_that_is_not_kafkas_is_not_parsed_as_one() -> None:
    frames = Frames()
    assert frames.feed(bytes(1 << 20)) == [] and not frames.kafka  # zeros: a frame of size 0 is no Kafka frame
