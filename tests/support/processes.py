"""The daemons as child processes, started the way users start them, with their logs captured."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.support.waiting import wait_until


class DaemonProcess:
    def __init__(self, role: str, log_file: Path, env: dict[str, str], *args: str) -> None:
        self.role = role
        self.log_file = log_file
        self._env = {**os.environ, **env}
        self._args = args
        self.prefix: list[str] = []  # a wrapper command, such as setpriv
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> DaemonProcess:
        with self.log_file.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.prefix, sys.executable, "-m", "streamsend", self.role, *self._args,
                env=self._env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        return self

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    async def wait_for_log(self, text: str | re.Pattern[str], timeout_s: float = 60) -> None:
        """Until the log holds ``text``, or a line matching it (a pattern)."""

        def found() -> bool:
            return text in self.log() if isinstance(text, str) else text.search(self.log()) is not None

        await wait_until(lambda: found() or self._exited(), timeout_s, f"{text!r} in the {self.role} log")
        assert found(), f"{self.role} exited early:\n{self.log()[-3000:]}"

    def _exited(self) -> bool:
        return self.process is not None and self.process.returncode is not None

    async def signal_and_wait(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 30) -> tuple[int, float]:
        """Send a signal; return the exit code and the seconds it took to exit."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(sig)
        code = await asyncio.wait_for(self.process.wait(), timeout_s)
        return code, time.monotonic() - started

    async def wait(self, timeout_s: float = 60) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout_s)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


def daemon_env(bootstrap: str, topic: str, **settings: object) -> dict[str, str]:
    env = {
        "STREAMSEND_BOOTSTRAP_SERVERS": bootstrap,
        "STREAMSEND_TOPIC": topic,
        "STREAMSEND_UPLOADER_NAME": "edge-1",
        "STREAMSEND_MIN_FILE_AGE": "0.3",
        "STREAMSEND_SESSION_TIMEOUT": "2",
        "STREAMSEND_HEARTBEAT_INTERVAL": "0.5",
        "STREAMSEND_MIN_FREE_SPACE": "0",
        "STREAMSEND_SHUTDOWN_GRACE": "5",
        "STREAMSEND_GROUP_ID": f"group-{topic}",
    }
    env.update({f"STREAMSEND_{name.upper()}": str(value) for name, value in settings.items()})
    return env


@asynccontextmanager
async def daemon_pair(
    bootstrap: str, topic: str, source: Path, target: Path, logs: Path, **settings: object
) -> AsyncIterator[tuple[DaemonProcess, DaemonProcess]]:
    """A downloader into ``target``, then an uploader of ``source``, as processes (logs ``up.log``,
    ``down.log`` in ``logs``); both killed on leaving, whatever happened."""
    down_env = daemon_env(bootstrap, topic, output_dir=target, **settings)
    down = DaemonProcess("downloader", logs / "down.log", down_env)
    up = DaemonProcess("uploader", logs / "up.log", daemon_env(bootstrap, topic, input_dir=source, **settings))
    try:
        await down.start()
        await up.start()
        yield up, down
    except BaseException:
        show_tails(up, down)
        raise
    finally:
        await up.kill()
        await down.kill()


def show_tails(*daemons: DaemonProcess, lines: int = 60) -> None:
    """Print the end of each log, which pytest shows beside a failure: a CI run leaves nothing else."""
    for daemon in daemons:
        tail = daemon.log().splitlines()[-lines:]
        print(f"----- last {len(tail)} lines of the {daemon.role} log ({daemon.log_file}) -----", *tail, sep="\n")


async def stop_cleanly(*daemons: DaemonProcess) -> None:
    """SIGTERM each in turn; each must exit 0."""
    for daemon in daemons:
        code, _ = await daemon.signal_and_wait(signal.SIGTERM)
        assert code == 0, daemon.log()[-3000:]


def assert_alive(*daemons: DaemonProcess) -> None:
    for daemon in daemons:
        assert daemon.process is not None and daemon.process.returncode is None, daemon.log()[-3000:]


_LINE = re.compile(r"^\[\d{8} [\d:.]+\] \w+ \[[^\]]*\] (.*)$", re.MULTILINE)
_VERIFIED = re.compile(r"^(\S.*?) \(\d+/\d+\):    final chunk, .* verified(?: \(md5 [0-9a-f]+\))?$")
_IDENTICAL = re.compile(r"^(\S.*?) \(\d+/\d+\):    final chunk, .* verified: the published file is identical, ")
_PUBLISHED_BEFORE = re.compile(r"^(\S.*?): upload [0-9a-f]+ was published before a restart: not again$")


# The uploader's line for the first chunk of big.bin acknowledged: not always chunk 1 (one sent again after a
# fault may be overtaken), so never wait for that one in particular.
FIRST_CHUNK_UPLOADED = re.compile(r"big\.bin \(\d+ of \d+\) chunk uploaded")


def messages(log: str) -> list[str]:
    """The messages of a daemon's text log, without time, level and worker."""
    return _LINE.findall(log)


def published(messages_: list[str]) -> list[str]:
    """Paths the downloader verified and published, once per publication."""
    return [match.group(1) for message in messages_ if (match := _VERIFIED.match(message))]


def found_identical(messages_: list[str]) -> list[str]:
    """Paths the downloader received again, identical to the file already published, and left as they were."""
    return [match.group(1) for message in messages_ if (match := _IDENTICAL.match(message))]


def published_before(messages_: list[str]) -> list[str]:
    """Paths read again after a restart whose upload the published ledger lists: the killed process published
    them, possibly before it could log so."""
    return [match.group(1) for message in messages_ if (match := _PUBLISHED_BEFORE.match(message))]
