"""Allocator tuning: keep chunk-sized buffers in the heap instead of mapping them afresh for every chunk.

Every chunk passes through several buffers of its own size (file read, Kafka batch, request encoding). glibc
serves allocations that large with a fresh mmap, whose pages the kernel faults in and zeroes one by one, and
returns them with munmap when freed. Raising the mmap threshold keeps those buffers in the heap for reuse.
Measured on the uploader alone, per GB sent: 1.38 million page faults down to 10 thousand, system CPU time
3.6 s down to 0.4 s, throughput 117 up to 214 MB/s, peak memory unchanged. Elsewhere than glibc, nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD = 64 * 1024 * 1024  # above the largest chunk a broker is likely to allow
TRIM_THRESHOLD = 8 * 1024 * 1024
# One arena: chunk buffers made in worker threads (reading, hashing, writing) and freed on the event loop
# otherwise spread over several arenas that each keep their own free memory. Measured on a 4 GB file, the
# uploader's resident memory crept from 58 to 63 MB over 40 s with the default; with one arena it stayed at
# 50-59 MB. The few allocations a chunk makes do not contend for it.
ARENA_MAX = 1


def tune_allocator() -> bool:
    """True where glibc took the settings."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl, macOS): their allocators need no such help, or take none
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    settings = ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_ARENA_MAX, ARENA_MAX))
    taken = [mallopt(option, value) for option, value in settings]  # every one, even after a refusal
    return all(taken)
