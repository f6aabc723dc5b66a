from __future__ import annotations

from pathlib import Path

import pytest

from streamsend.cli import main as cli_main
from streamsend.downloader.settings import DownloaderSettings
from streamsend.shared.errors import SettingsError
from streamsend.shared.settings import load_settings, unknown_variables
from streamsend.uploader.settings import UploaderSettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("STREAMSEND_"):
            monkeypatch.delenv(name)


def test_flags_override_environment_which_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "streamsend.toml"
    config.write_text('topic = "from-file"\nmin_file_age = 1.5\nchunk_size = "64KiB"\nrescan_interval = 7\n')
    monkeypatch.setenv("STREAMSEND_MIN_FILE_AGE", "2.5")
    monkeypatch.setenv("STREAMSEND_TOPIC", "from-env")
    settings = load_settings(
        UploaderSettings, ["--config", str(config), "--input-dir", str(tmp_path), "--topic", "from-flag"], "t"
    )
    assert settings.topic == "from-flag"
    assert settings.min_file_age == 2.5
    assert settings.chunk_size == 65536
    assert settings.rescan_interval == 7
    assert settings.input_dir == tmp_path.resolve()


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(UploaderSettings, ["--input-dir", str(tmp_path)], "t")
    assert (settings.bootstrap_servers, settings.topic, settings.min_file_age) == (
        "localhost:9092", "file-chunk-topic", 5.0,
    )  # fmt: skip
    assert settings.uploader_name and settings.pattern.fullmatch("anything")
    downloader = load_settings(DownloaderSettings, ["--output-dir", str(tmp_path)], "t")
    assert downloader.group_id == "streamsend-downloader"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "invalid setting input_dir: required: give --input-dir"),
        (["--input-dir", "/no/such/dir"], "invalid setting input_dir: not a directory: /no/such/dir"),
        (["--file-pattern", "(unclosed"], "invalid setting file_pattern: not a valid regular expression"),
        (["--min-file-age", "-1"], "invalid setting min_file_age: Input should be greater than or equal to 0"),
        (["--chunk-size", "12XB"], "invalid setting chunk_size: could not interpret byte unit: XB"),
        (["--chunk-size", "-5"], "invalid setting chunk_size"),
        (["--max-in-flight-bytes", "0"], "invalid setting max_in_flight_bytes"),
        (["--uploader-name", "../etc"], "invalid setting uploader_name"),
        (["--topic", "bad topic"], "invalid setting topic: a Kafka topic name is"),
        (["--bootstrap-servers", "nohostport"], "invalid setting bootstrap_servers: expected host:port"),
        (["--log-level", "chatty"], "invalid setting log_level"),
        (["--metrics-port", "70000"], "invalid setting metrics_port"),
        (["--ssl-certfile", "/etc/hostname"], "ssl_certfile and ssl_keyfile go together"),
        (["--security-protocol", "SASL_SSL"], "needs sasl_username and sasl_password"),
    ],
)
def test_bad_values_name_the_setting(tmp_path: Path, args: list[str], message: str) -> None:
    if args and args[0] != "--input-dir":
        args = ["--input-dir", str(tmp_path), *args]
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        load_settings(UploaderSettings, args, "t")


def test_bad_values_in_the_file_or_the_environment_are_named_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.toml"
    config.write_text("no_such_setting = 1\n")
    with pytest.raises(SettingsError, match="invalid setting no_such_setting: Extra inputs are not permitted"):
        load_settings(UploaderSettings, ["--config", str(config), "--input-dir", str(tmp_path)], "t")
    config.write_text("this is = not toml = \n")
    with pytest.raises(SettingsError, match="is not valid TOML"):
        load_settings(UploaderSettings, ["--config", str(config), "--input-dir", str(tmp_path)], "t")
    with pytest.raises(SettingsError, match="invalid setting config: file not found"):
        load_settings(UploaderSettings, ["--config", str(tmp_path / "missing.toml")], "t")
    monkeypatch.setenv("STREAMSEND_MAX_OPEN_FILES", "zero")
    with pytest.raises(SettingsError, match="invalid setting max_open_files"):
        load_settings(DownloaderSettings, ["--output-dir", str(tmp_path)], "t")


def test_downloader_checks_its_timeouts(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="heartbeat_interval must be shorter than session_timeout"):
        load_settings(
            DownloaderSettings,
            ["--output-dir", str(tmp_path), "--session-timeout", "2", "--heartbeat-interval", "3"],
            "t",
        )


def test_secrets_never_show_in_the_settings_dump(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("hunter2\n")
    settings = load_settings(
        UploaderSettings,
        ["--input-dir", str(tmp_path), "--security-protocol", "SASL_PLAINTEXT", "--sasl-username", "me",
         "--sasl-password-file", str(secret)],
        "t",
    )  # fmt: skip
    assert settings.sasl_secret.get_secret_value() == "hunter2"  # read when the first client is made
    assert "hunter2" not in settings.describe() and "hunter2" not in repr(settings)


def test_the_command_exits_2_with_one_line_naming_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["uploader", "--input-dir", "/no/such/dir"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["streamsend uploader: invalid setting input_dir: not a directory: /no/such/dir (got '/no/such/dir')"]
    assert cli_main(["downloader"]) == 2
    assert "invalid setting output_dir: required: give --output-dir, STREAMSEND_OUTPUT_DIR" in capsys.readouterr().err


def test_the_command_lists_its_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["--help"]) == 0
    assert "uploader" in capsys.readouterr().out
    assert cli_main(["launch"]) == 2
    assert cli_main([]) == 2


def test_transactions_need_a_state_topic_and_are_off_by_default(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="invalid settings: transactional on needs a state_topic"):
        load_settings(
            UploaderSettings, ["--input-dir", str(tmp_path), "--transactional", "on", "--state-topic", ""], "t"
        )
    assert load_settings(UploaderSettings, ["--input-dir", str(tmp_path)], "t").transactional == "off"
    for spelled, meant in (("true", "on"), ("FALSE", "off"), ("auto", "auto"), ("yes", "on")):
        settings = load_settings(UploaderSettings, ["--input-dir", str(tmp_path), "--transactional", spelled], "t")
        assert settings.transactional == meant
    with pytest.raises(SettingsError, match="invalid setting transactional"):
        load_settings(UploaderSettings, ["--input-dir", str(tmp_path), "--transactional", "sometimes"], "t")


@pytest.mark.parametrize(
    ("role", "name", "others"),
    [
        ("downloader", "OUTPUT_DIR", {}),
        ("uploader", "INPUT_DIR", {}),
        ("uploader", "DONE_DIR", {"STREAMSEND_AFTER_UPLOAD": "move"}),
        ("uploader", "SSL_CAFILE", {}),
        ("downloader", "SASL_PASSWORD_FILE", {}),
    ],
)
def test_an_empty_path_setting_exits_2_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    role: str, name: str, others: dict[str, str],
) -> None:  # fmt: skip
    # An unset chart value renders as "": it must not mean the working directory.
    monkeypatch.chdir(tmp_path)
    folder = "STREAMSEND_INPUT_DIR" if role == "uploader" else "STREAMSEND_OUTPUT_DIR"
    monkeypatch.setenv(folder, str(tmp_path))
    for key, value in {**others, f"STREAMSEND_{name}": ""}.items():
        monkeypatch.setenv(key, value)
    assert cli_main([role]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"streamsend {role}: invalid setting {name.lower()}: empty: give a path, or leave it out")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("role", ["uploader", "downloader"])
def test_help_shows_metavars_a_person_reads(role: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main([role, "--help"])
    shown = capsys.readouterr().out
    for internal in ("{Path,null}", "SecretStr", "ByteSize", "(default: )", "(default: null)", "Path]"):
        assert internal not in shown
    folder = "--input-dir DIR" if role == "uploader" else "--output-dir DIR"
    for readable in (folder, "--ssl-cafile FILE", "--sasl-password SECRET", "--request-timeout SECONDS"):
        assert readable in shown
    assert ("--chunk-size SIZE" if role == "uploader" else "--max-fetch-bytes SIZE") in shown
    client = shown[shown.index("--client-id TEXT") : shown.index("--log-level")]
    assert "default" not in client


def test_the_downloader_settings_load_no_io_module() -> None:
    # A settings check (a config linter, --help) must not load the publisher's libc bindings.
    import subprocess
    import sys

    code = "import sys, streamsend.downloader.settings; print(sorted(m for m in sys.modules if m == 'ctypes'"
    code += " or m.startswith('streamsend.downloader.') and m != 'streamsend.downloader.settings'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_durations_take_units_as_sizes_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSEND_RESCAN_INTERVAL", "2m")
    settings = load_settings(
        UploaderSettings,
        ["--input-dir", str(tmp_path), "--request-timeout", "45s", "--state-forget-after", "1h30m", "--linger", "5ms"],
        "t",
    )
    assert (settings.rescan_interval, settings.request_timeout) == (120.0, 45.0)
    assert (settings.state_forget_after, settings.linger) == (5400.0, 0.005)
    downloader = load_settings(DownloaderSettings, ["--output-dir", str(tmp_path), "--stale-after", "7d"], "t")
    assert downloader.stale_after == 7 * 86400.0
    with pytest.raises(SettingsError, match="invalid setting request_timeout: not a duration"):
        load_settings(UploaderSettings, ["--input-dir", str(tmp_path), "--request-timeout", "5 parsecs"], "t")


def test_a_missing_setting_names_its_flag_and_variable() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(UploaderSettings, [], "t")
    assert str(caught.value) == (
        "invalid setting input_dir: required: give --input-dir, STREAMSEND_INPUT_DIR or input_dir in the --config file"
    )


def test_help_shows_defaults_as_they_are_written(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        load_settings(UploaderSettings, ["--help"], "streamsend uploader")
    shown = " ".join(capsys.readouterr().out.split())
    assert "(default: 32MiB)" in shown and "33554432" not in shown
    assert "(default: this host's name)" in shown and "default factory" not in shown


def test_a_variable_that_names_no_setting_is_reported_with_the_closest_one() -> None:
    environ = {
        "STREAMSEND_INPUT_DIRS": "/in",  # a typo
        "STREAMSEND_OUTPUT_DIR": "/out",  # the downloader's, in a shared environment: not a typo
        "STREAMSEND_STATUS_URL": "x",
        "STREAMSEND_WHATEVER_ELSE": "1",
        "PATH": "/bin",
    }
    assert unknown_variables((UploaderSettings, DownloaderSettings), environ) == [
        "Environment variable STREAMSEND_INPUT_DIRS names no setting: ignored; did you mean STREAMSEND_INPUT_DIR?",
        "Environment variable STREAMSEND_WHATEVER_ELSE names no setting: ignored",
    ]
