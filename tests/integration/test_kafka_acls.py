"""ACLs on Apache Kafka (StandardAuthorizer): principals with the right grants stream files; an uploader
without WRITE on the topic, or a downloader without READ on its group, stops with exit code 2 and one line that
says what to grant, rather than retrying for ever."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streamsend.demo.kafka_broker import ApacheKafka
from tests.support.brokers import require_kafka
from tests.support.daemons import downloader, uploader
from tests.support.kafka import TopicFactory
from tests.support.processes import DaemonProcess, daemon_env, messages
from tests.support.waiting import wait_until

pytestmark = pytest.mark.kafka

PASSWORDS = {"sender": "s-secret", "receiver": "r-secret", "reader-only": "o-secret", "no-group": "g-secret"}


@pytest.fixture(scope="module")
def guarded() -> Iterator[ApacheKafka]:
    """Plaintext for the nodes themselves (the anonymous principal is a super user there), SASL PLAIN for the
    daemons, and nothing allowed that an ACL does not allow."""
    require_kafka()
    users = " ".join(f'user_{name}="{password}"' for name, password in PASSWORDS.items())
    properties = {
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS",
        "allow.everyone.if.no.acl.found": "false",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config":
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};",
    }  # fmt: skip
    with ApacheKafka(listeners=("PLAINTEXT", "SASL_PLAINTEXT"), properties=properties) as kafka:
        yield kafka


def _as(user: str) -> dict[str, object]:
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_username": user,
        "sasl_password": PASSWORDS[user],
    }


async def _topic(kafka: ApacheKafka) -> str:
    topics = TopicFactory(kafka.servers("PLAINTEXT"))
    return await topics.create(partitions=3)


async def test_granted_principals_stream_a_tree(guarded: ApacheKafka, tmp_path: Path) -> None:
    topic = await _topic(guarded)
    group = f"group-{topic}"
    guarded.acl("--add", "--allow-principal", "User:sender", "--operation", "Write", "--topic", topic)
    guarded.acl("--add", "--allow-principal", "User:receiver", "--operation", "Read", "--topic", topic,
                "--group", group)  # fmt: skip
    source, target = tmp_path / "in", tmp_path / "out"
    (source / "shop-7").mkdir(parents=True)
    target.mkdir()
    for index in range(5):
        (source / "shop-7" / f"till-{index}.csv").write_bytes(b"sku,qty\n" * (index + 1) * 40000)
    bootstrap = guarded.servers("SASL_PLAINTEXT")
    async with (
        downloader(bootstrap, topic, target, group_id=group, **_as("receiver")),
        uploader(bootstrap, topic, source, state_topic="", **_as("sender")) as up,
    ):
        await wait_until(lambda: len(list((target / "edge-1" / "shop-7").glob("*.csv"))) == 5, 60, "five files")
        assert up.metric("streamsend_uploader_files_failed_total", reason="kafka") == 0
    for index in range(5):
        assert (target / "edge-1" / "shop-7" / f"till-{index}.csv").read_bytes() == b"sku,qty\n" * (index + 1) * 40000


async def _refused(kafka: ApacheKafka, topic: str, tmp_path: Path, role: str, user: str) -> list[str]:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "receipt.txt").write_bytes(b"total 12.50\n")
    where = {"input_dir": folder} if role == "uploader" else {"output_dir": folder}
    env = daemon_env(kafka.servers("SASL_PLAINTEXT"), topic, state_topic="", **where, **_as(user))
    process = await DaemonProcess(role, tmp_path / f"{role}.log", env).start()
    try:
        assert await process.wait(timeout_s=60) == 2, process.log()[-3000:]
    finally:
        await process.kill()
    errors = [line for line in process.log().splitlines() if " ERROR " in line]
    assert len(errors) == 1, process.log()[-3000:]
    assert "Traceback" not in process.log()
    return messages(process.log())


async def test_an_uploader_without_write_stops_saying_what_to_grant(guarded: ApacheKafka, tmp_path: Path) -> None:
    topic = await _topic(guarded)
    guarded.acl("--add", "--allow-principal", "User:reader-only", "--operation", "Describe", "--topic", topic)
    lines = await _refused(guarded, topic, tmp_path, "uploader", "reader-only")
    assert (
        f"access refused: the broker does not allow User:reader-only to WRITE topic {topic} "
        "(TopicAuthorizationFailedError); grant it (kafka-acls --add --allow-principal User:reader-only "
        f"--operation Write --topic {topic}) or connect as a principal that has it"
    ) in lines


async def test_a_downloader_without_read_on_its_group_stops_saying_what_to_grant(
    guarded: ApacheKafka, tmp_path: Path
) -> None:
    topic = await _topic(guarded)
    guarded.acl("--add", "--allow-principal", "User:no-group", "--operation", "Read", "--topic", topic)
    lines = await _refused(guarded, topic, tmp_path, "downloader", "no-group")
    assert (
        f"access refused: the broker does not allow User:no-group to READ group group-{topic} "
        "(GroupAuthorizationFailedError); grant it (kafka-acls --add --allow-principal User:no-group "
        f"--operation Read --group group-{topic}) or connect as a principal that has it"
    ) in lines
