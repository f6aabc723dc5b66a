"""GET against a daemon's metrics port, from a thread: the daemons under test answer from the test's own loop."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except urllib.error.URLError as error:  # not listening yet
        return 0, str(error.reason)


async def get(port: int, path: str) -> tuple[int, str]:
    return await asyncio.to_thread(_get, port, path)


async def answered(port: int, path: str, expected: tuple[int, str] | int, timeout_s: float = 60) -> None:
    """Poll an endpoint until it answers ``expected`` (a status, or a status and a body)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        status, body = await get(port, path)
        if expected in (status, (status, body)):
            return
        assert asyncio.get_running_loop().time() < deadline, f"{path} answered {status} {body!r}"
        await asyncio.sleep(0.1)
