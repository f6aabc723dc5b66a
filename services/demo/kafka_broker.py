"""Apache Kafka itself, run from its Maven artifacts: single KRaft nodes and small clusters on loopback.

``scripts/install-kafka`` puts the broker's classpath in ``.tools/kafka/<version>/libs``; ``STREAMSEND_KAFKA_LIBS``
points elsewhere. Each node is a combined broker and controller with its own log dir, so killing one and starting
it again on the same dir is a real broker crash. Listeners are named after their security protocol (``PLAINTEXT``,
``SASL_PLAINTEXT``, ``SSL``, ``SASL_SSL``); the first one carries the traffic between the nodes.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from streamsend.demo.broker import free_port
from streamsend.shared.errors import BrokerError

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
READY_LINE = "Kafka Server started"

# Settings a test cluster on one small machine wants: few internal partitions, fast group joins, short
# session timeouts allowed, and one copy of the internal topics where there is one node.
_TEST_DEFAULTS = {
    "offsets.topic.num.partitions": "6",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",
    "transaction.state.log.num.partitions": "6",
    "num.partitions": "6",
    "log.segment.bytes": str(256 * 1024 * 1024),
    "log.flush.interval.messages": str(2**62),  # Kafka's own default: durability by replication, not fsync
    "auto.create.topics.enable": "false",
    "delete.topic.enable": "true",
    "file.delete.delay.ms": "1000",
}

_LOG4J = """\
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
"""


def kafka_libs() -> Path:
    """The folder holding the broker's jars, or BrokerError saying how to get them."""
    configured = os.environ.get("STREAMSEND_KAFKA_LIBS")
    candidates = [Path(configured)] if configured else []
    candidates += sorted((Path.cwd() / ".tools" / "kafka").glob("*/libs"), reverse=True)  # run from the repository
    for candidate in candidates:
        if (candidate / ".complete").exists() or any(candidate.glob("kafka_2.13-*.jar")):
            return candidate
    raise BrokerError("Apache Kafka is not installed: run scripts/install-kafka (or set STREAMSEND_KAFKA_LIBS)")


def java_binary() -> str:
    found = shutil.which("java")
    if found is None:
        raise BrokerError("Apache Kafka needs Java: run scripts/install-kafka (it installs it as root on Debian)")
    return found


def kafka_version(libs: Path | None = None) -> str:
    for jar in (libs or kafka_libs()).glob("kafka_2.13-*.jar"):
        return jar.name.removeprefix("kafka_2.13-").removesuffix(".jar")
    return "unknown"


PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


class KafkaNode:
    """One combined broker and controller. ``advertised`` lets a test put a relay in front of a listener."""

    def __init__(
        self,
        node_id: int,
        data_dir: Path,
        listeners: Sequence[str],
        properties: Mapping[str, str],
        advertised: Mapping[str, int] | None = None,
    ) -> None:
        self.node_id = node_id
        self.host = "127.0.0.1"
        self.data_dir = data_dir
        self.ports = {name: free_port() for name in listeners}
        self.controller_port = free_port()
        self.advertised = {name: (advertised or {}).get(name, port) for name, port in self.ports.items()}
        self._listeners = list(listeners)
        self._properties = dict(properties)
        self._process: subprocess.Popen[bytes] | None = None
        self.log_file = data_dir / "server.log"
        self._log_offset = 0  # where the current run's log begins: a restart appends to the same file

    def address(self, listener: str | None = None) -> str:
        return f"{self.host}:{self.advertised[listener or self._listeners[0]]}"

    def write_config(self, voters: str) -> Path:
        listeners = [f"{name}://{self.host}:{port}" for name, port in self.ports.items()]
        advertised = [f"{name}://{self.host}:{port}" for name, port in self.advertised.items()]
        # A listener named after a security protocol speaks it; any other name (a second plaintext listener, one
        # advertised through a relay) speaks plaintext.
        protocols = {name: name if name in PROTOCOLS else "PLAINTEXT" for name in self._listeners}
        protocols["CONTROLLER"] = "PLAINTEXT"
        config = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "listeners": ",".join([*listeners, f"CONTROLLER://{self.host}:{self.controller_port}"]),
            "advertised.listeners": ",".join(advertised),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": self._listeners[0],
            "listener.security.protocol.map": ",".join(f"{k}:{v}" for k, v in protocols.items()),
            "controller.quorum.voters": voters,
            "log.dirs": str(self.data_dir / "log"),
            **self._properties,
        }
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in config.items()))
        (self.data_dir / "log4j.properties").write_text(_LOG4J)
        return path

    def format(self, cluster_id: str, scram: Sequence[str] = ()) -> None:
        # "=": a random id may begin with "-", which the tool would take for an option
        command = [*self._java("kafka.tools.StorageTool"), "format", f"--cluster-id={cluster_id}"]
        command += ["-c", str(self.data_dir / "server.properties")]
        for credential in scram:
            command += ["--add-scram", credential]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BrokerError(f"kafka storage format failed: {done.stdout}{done.stderr}")

    def _java(self, main: str, heap: str = "256m") -> list[str]:
        log4j = (self.data_dir / "log4j.properties").as_uri()
        return [java_binary(), f"-Xmx{heap}", f"-Dlog4j.configuration={log4j}", "-cp", f"{kafka_libs()}/*", main]

    def launch(self) -> None:
        """Start the process; ``wait_ready`` waits for it (nodes of a cluster start together)."""
        command = self._java("kafka.Kafka", heap=os.environ.get("STREAMSEND_KAFKA_HEAP", "768m"))
        command.insert(1, "-XX:+UseG1GC")
        self._log_offset = len(self.log())
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [*command, str(self.data_dir / "server.properties")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if READY_LINE in self.log()[self._log_offset :]:
                return
            if self._process is None or self._process.poll() is not None:
                break
            time.sleep(0.05)
        raise BrokerError(f"Kafka node {self.node_id} did not start: {self.log()[-3000:]}")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def kill(self) -> None:
        """SIGKILL: a crash, with whatever the page cache had not yet written left to the kernel."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class ApacheKafka:
    """``with ApacheKafka() as kafka:`` one KRaft node on free loopback ports; ``nodes=3`` a cluster.

    ``scram`` takes StorageTool's ``--add-scram`` arguments (users exist from the first start); ``properties``
    are added to every node's server.properties.
    """

    def __init__(
        self,
        nodes: int = 1,
        listeners: Sequence[str] = ("PLAINTEXT",),
        properties: Mapping[str, str] | None = None,
        scram: Sequence[str] = (),
        advertised: Mapping[str, int] | None = None,
    ) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="kafka-"))
        defaults = dict(_TEST_DEFAULTS)
        copies = str(min(nodes, 3))
        for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor"):
            defaults[key] = copies
        defaults["transaction.state.log.min.isr"] = "2" if nodes >= 3 else "1"
        merged = defaults | dict(properties or {})
        self.nodes = [
            KafkaNode(i + 1, self.data_dir / f"node-{i + 1}", listeners, merged, advertised if nodes == 1 else None)
            for i in range(nodes)
        ]
        self._scram = list(scram)
        self.cluster_id = ""

    @property
    def bootstrap(self) -> str:
        return self.servers()

    def servers(self, listener: str | None = None) -> str:
        return ",".join(node.address(listener) for node in self.nodes)

    def start(self) -> ApacheKafka:
        started = time.monotonic()
        try:
            voters = ",".join(f"{n.node_id}@{n.host}:{n.controller_port}" for n in self.nodes)
            self.cluster_id = _cluster_id()
            for node in self.nodes:
                node.data_dir.mkdir(parents=True)
                node.write_config(voters)
                node.format(self.cluster_id, self._scram)
            for node in self.nodes:
                node.launch()
            for node in self.nodes:
                node.wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started
        return self

    def acl(self, *arguments: str) -> None:
        """Run Kafka's ACL tool against the first listener (``--add --allow-principal User:x ...``)."""
        node = self.nodes[0]
        command = [*node._java("kafka.admin.AclCommand", heap="128m"), "--bootstrap-server", node.address()]
        done = subprocess.run([*command, *arguments], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BrokerError(f"kafka-acls {' '.join(arguments)} failed: {done.stdout}{done.stderr}")

    def restart(self, node: KafkaNode) -> None:
        node.launch()
        node.wait_ready()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill() if len(self.nodes) > 1 else node.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> ApacheKafka:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _cluster_id() -> str:
    """A cluster id in the form the storage tool wants: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
