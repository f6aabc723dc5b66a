from __future__ import annotations

from pathlib import Path

import aiokafka.errors as kafka_errors
import pytest

from streamsend.shared.access import refusal
from streamsend.shared.errors import AccessRefused, SettingsError
from streamsend.shared.settings import load_settings
from streamsend.uploader.settings import UploaderSettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("STREAMSEND_"):
            monkeypatch.delenv(name)


def _settings(tmp_path: Path, *flags: str) -> UploaderSettings:
    return load_settings(UploaderSettings, ["--input-dir", str(tmp_path), "--topic", "chunks", *flags], "t")


def test_other_faults_are_not_refusals(tmp_path: Path) -> None:
    assert refusal(kafka_errors.KafkaConnectionError("down"), _settings(tmp_path), {"chunks": "WRITE"}) is None


def test_the_refused_topic_is_the_one_the_broker_names(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "--state-topic", "chunks-state")
    topics = {"chunks": "WRITE", "chunks-state": "READ,WRITE"}
    found = refusal(kafka_errors.TopicAuthorizationFailedError("chunks-state"), settings, topics)
    assert isinstance(found, AccessRefused) and isinstance(found, SettingsError)
    assert str(found) == (
        "access refused: the broker does not allow User:ANONYMOUS to READ and WRITE topic chunks-state "
        "(TopicAuthorizationFailedError); grant it (kafka-acls --add --allow-principal User:ANONYMOUS "
        "--operation Read --operation Write --topic chunks-state) or connect as a principal that has it"
    )
    unnamed = refusal(kafka_errors.TopicAuthorizationFailedError(), settings, topics)
    assert unnamed is not None and "WRITE topic chunks " in str(unnamed)


def test_a_refusal_inside_a_task_group_or_a_cause_is_found(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, "--security-protocol", "SASL_SSL", "--sasl-username", "till-4", "--sasl-password", "x"
    )
    inner = kafka_errors.GroupAuthorizationFailedError("g")
    try:
        raise RuntimeError("wrapped") from inner
    except RuntimeError as wrapped:
        group = ExceptionGroup("tasks", [ValueError("other"), wrapped])
    found = refusal(group, settings, {"chunks": "WRITE"})
    assert found is not None and "User:till-4 to READ group" in str(found)


def test_a_principal_without_a_user_name_gets_no_allow_flag(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("jwt")
    settings = _settings(
        tmp_path, "--security-protocol", "SASL_SSL", "--sasl-mechanism", "OAUTHBEARER",
        "--sasl-oauth-token-file", str(tmp_path / "token"),
    )  # fmt: skip
    found = refusal(kafka_errors.ClusterAuthorizationFailedError(), settings, {"chunks": "WRITE"})
    assert found is not None
    assert "the principal of the OAUTHBEARER token to DESCRIBE cluster (" in str(found)
    assert "(kafka-acls --add --operation Describe --cluster)" in str(found)
