"""How much the downloader asks of Kafka per fetch: enough to keep a long link busy, no more than its bound.

aiokafka keeps one fetch in flight per broker, and fetches a partition again only once its records have been
handed over. A fetch of F bytes across a link of round trip R and rate B therefore moves F / (R + F / B) bytes a
second: 2 MiB at 50 ms and 25 MB/s is 15 MB/s, 12 MiB is 23 MB/s. The size starts small (a downloader on the
broker's network needs no more, and a small device no more memory) and doubles, up to ``max_fetch_bytes``,
whenever a poll had to wait for the network and a partition's records filled the fetch: the broker held more
than was asked for, and the link, not this downloader, was what the records waited on.

A fetch on a thin link also delays everything queued behind it on that link, the group heartbeats among them:
the size stops growing once a poll waits more than a quarter of the session timeout for it (``max_wait_s``;
a doubled fetch would take twice as long), and halves when a poll waits more than that. Otherwise it never
shrinks: a large fetch costs memory only while there is a backlog to fetch.

Pure logic; the consume loop measures the waits and sizes, and sets the size on its consumer.
"""

from __future__ import annotations

START_BYTES = 2 * 1024 * 1024
WAITED_S = 0.005  # a poll that waited longer than this waited on the network, not on this process
FULL = 0.75  # a partition's records this share of the fetch size or more: the broker had more


class FetchSize:
    def __init__(self, limit: int, max_wait_s: float, start: int = START_BYTES) -> None:
        self.limit = limit
        self.max_wait_s = max_wait_s
        self.least = min(start, limit)
        self.bytes = self.least

    def polled(self, waited_s: float, partition_bytes: list[int]) -> bool:
        """A poll that waited ``waited_s`` and returned these bytes per partition; True if the size changed."""
        full = any(size >= FULL * self.bytes for size in partition_bytes)
        if waited_s > self.max_wait_s and full and self.bytes > self.least:
            self.bytes = max(self.bytes // 2, self.least)
            return True
        if self.bytes >= self.limit or waited_s < WAITED_S or 2 * waited_s > self.max_wait_s or not full:
            return False
        self.bytes = min(2 * self.bytes, self.limit)
        return True
