from __future__ import annotations

import platform
import subprocess
import sys

import pytest

_PROGRAM = """
import ctypes, ctypes.util, sys, threading
from streamsend.shared.memory import tune_allocator
if sys.argv[1] == "tuned":
    assert tune_allocator()
def work():
    kept = [bytes(200_000) for _ in range(20)]
threads = [threading.Thread(target=work) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL(ctypes.util.find_library("c")).malloc_stats()
"""


def _arenas(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _PROGRAM, mode], capture_output=True, text=True, check=True)
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings are glibc's")
def test_worker_threads_share_one_arena_once_tuned() -> None:
    assert _arenas("default") > 1  # each thread would keep free memory of its own
    assert _arenas("tuned") == 1
