"""Key files: ``streamsend keygen``, loading, and the settings that name them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from streamsend import cli
from streamsend.downloader.settings import DownloaderSettings
from streamsend.shared import keys
from streamsend.shared.errors import SettingsError
from streamsend.shared.settings import load_settings
from streamsend.uploader.settings import UploaderSettings


@pytest.fixture
def made(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    assert cli.main(["keygen", "--out", str(folder)]) == 0
    return folder


def test_keygen_writes_two_pairs_readable_by_their_owner_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = tmp_path / "fresh"
    assert cli.main(["keygen", "--out", str(made)]) == 0
    names = {keys.RECIPIENT_KEY, keys.RECIPIENT_PUB, keys.SIGNER_KEY, keys.SIGNER_PUB}
    assert {p.name for p in made.iterdir()} == names
    for path in made.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert isinstance(keys.load_identity(made / keys.RECIPIENT_KEY), keys.Identity)
    recipient = keys.load_recipient(made / keys.RECIPIENT_PUB)
    assert keys.load_identity(made / keys.RECIPIENT_KEY).id == recipient.id
    keys.load_signing_key(made / keys.SIGNER_KEY)
    shown = capsys.readouterr().out
    assert recipient.id in shown and (made / keys.RECIPIENT_PUB).read_text().strip() in shown
    assert (made / keys.SIGNER_PUB).read_text().strip() in shown
    assert "PRIVATE" not in shown


def test_keygen_never_overwrites_a_key(made: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (made / keys.SIGNER_KEY).read_bytes()
    assert cli.main(["keygen", "--out", str(made)]) == 2
    assert "exists: keys are never overwritten" in capsys.readouterr().err
    assert (made / keys.SIGNER_KEY).read_bytes() == before
    assert cli.main(["keygen", "--out", str(made), "--prefix", "till-4-"]) == 0  # beside them, named apart
    assert (made / f"till-4-{keys.SIGNER_KEY}").is_file()


def _uploader(tmp_path: Path, *argv: str) -> UploaderSettings:
    return load_settings(UploaderSettings, ["--input-dir", str(tmp_path), *argv], "streamsend uploader")


def _downloader(tmp_path: Path, *argv: str) -> DownloaderSettings:
    return load_settings(DownloaderSettings, ["--output-dir", str(tmp_path), *argv], "streamsend downloader")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--encrypt-to", "{k}/signer.pub"], "invalid setting encrypt_to: {k}/signer.pub is an Ed25519"),
        (["--encrypt-to", "{k}/missing.pub"], "invalid setting encrypt_to: {k}/missing.pub is not a PEM public"),
        (["--encrypt-to", "{k}/recipient.key"], "invalid setting encrypt_to: {k}/recipient.key is not a PEM public"),
        (["--encrypt-to", "{k}/recipient.pub", "--signing-key", "{k}/recipient.key"],
         "invalid setting signing_key: {k}/recipient.key is an X25519"),
        (["--signing-key", "{k}/signer.key"], "invalid settings: signing_key needs encrypt_to"),
        (["--encrypt-names"], "invalid settings: encrypt_names needs encrypt_to"),
    ],
)  # fmt: skip
def test_a_bad_uploader_key_setting_is_named(made: Path, argv: list[str], message: str) -> None:
    """By the settings' own rules, or as the keys are read at start (settings do no I/O of their own)."""
    with pytest.raises(SettingsError) as caught:
        _uploader(made, *(arg.format(k=made) for arg in argv)).sealer()
    assert str(caught.value).startswith(message.format(k=made))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--decrypt-key", "{k}/recipient.pub"], "invalid setting decrypt_key: {k}/recipient.pub is not an"),
        (["--decrypt-key", "{k}/signer.key"], "invalid setting decrypt_key: {k}/signer.key is an Ed25519"),
        (["--trusted-uploaders", "edge-1"], "invalid setting trusted_uploaders: 'edge-1' is not NAME=FILE"),
        (["--trusted-uploaders", "../x={k}/signer.pub"], "invalid setting trusted_uploaders: '../x': uploader"),
        (["--trusted-uploaders", "edge-1={k}/recipient.pub"], "invalid setting trusted_uploaders: {k}/recipient.pub"),
    ],
)  # fmt: skip
def test_a_bad_downloader_key_setting_is_named(made: Path, argv: list[str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        _downloader(made, *(arg.format(k=made) for arg in argv)).opener()
    assert str(caught.value).startswith(message.format(k=made))


def test_key_lists_come_as_comma_separated_text_or_repeated_flags(
    made: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys.generate(made, "new-")
    monkeypatch.setenv("STREAMSEND_DECRYPT_KEY", f"{made}/recipient.key, {made}/new-recipient.key")
    monkeypatch.setenv("STREAMSEND_TRUSTED_UPLOADERS", f"edge-1={made}/signer.pub,edge-1={made}/new-signer.pub")
    settings = _downloader(tmp_path)
    assert settings.decrypt_key == [made / "recipient.key", made / "new-recipient.key"]
    assert "2 keys" in settings.opener().describe()
    up = _uploader(tmp_path, "--encrypt-to", f"{made}/recipient.pub", "--encrypt-to", f"{made}/new-recipient.pub")
    assert up.encrypt_to == [made / "recipient.pub", made / "new-recipient.pub"]
    monkeypatch.setenv("STREAMSEND_ENCRYPT_TO", "")  # an unset chart value: sealing off, not an error
    assert _uploader(tmp_path).sealer() is None


def test_a_daemon_with_a_bad_key_exits_2_naming_the_setting(made: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["downloader", "--output-dir", str(made), "--decrypt-key", str(made / keys.SIGNER_KEY)])
    assert code == 2
    assert capsys.readouterr().err.startswith("streamsend downloader: invalid setting decrypt_key:")
