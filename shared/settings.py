"""Settings common to both daemons, and the loader that merges flags, environment and a TOML file.

Precedence: command-line flags (``--name-with-dashes``) over environment variables (``STREAMSEND_<NAME>``)
over the TOML file given with ``--config`` over the defaults. A value that does not validate stops the
daemon at start with one line per setting at fault (see ``SettingsError``).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BeforeValidator,
    ByteSize,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    CliSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from streamsend.shared.errors import SettingsError

ENV_PREFIX = "STREAMSEND_"
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_config_file: ContextVar[Path | None] = ContextVar("streamsend_config_file", default=None)

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> Any:
    """Seconds from a number, or from text with units as sizes take them: ``90``, ``1.5``, ``500ms``, ``5s``,
    ``2m``, ``1h30m``, ``7d``."""
    if not isinstance(value, str):
        return value
    text = value.strip().replace(" ", "").lower()
    try:
        return float(text)
    except ValueError:
        pass
    if not _DURATION.fullmatch(text):
        raise ValueError("not a duration: give seconds (90, 1.5) or a number with a unit (500ms, 5s, 2m, 1h, 7d)")
    return sum(float(number) * _UNIT_S[unit] for number, unit in _DURATION_PART.findall(text))


Seconds = Annotated[float, BeforeValidator(parse_duration)]


def split_list(value: Any) -> Any:
    """A list setting from a JSON list, or from text with commas (as environment variables and charts give
    it); empty text is an empty list."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON list: {exc}") from None
    return [item.strip() for item in text.split(",") if item.strip()]


def check_topic_name(value: str) -> str:
    if not _TOPIC_NAME.fullmatch(value) or value in (".", ".."):
        raise ValueError("a Kafka topic name is 1-249 of [A-Za-z0-9._-]")
    return value


class CommonSettings(BaseSettings):
    """Kafka connection, logging and process settings shared by the uploader and the downloader."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    bootstrap_servers: str = Field("localhost:9092", description="Kafka bootstrap servers, host:port[,host:port]")
    topic: str = Field("file-chunk-topic", description="topic that carries the chunks")
    topic_partitions: int = Field(6, ge=1, le=10000, description="partitions when this daemon creates the topic")
    client_id: str = Field("", description="Kafka client id ('' = streamsend-uploader or streamsend-downloader)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log threshold")
    log_format: Literal["text", "json"] = Field("text", description="text lines or one JSON object per line")
    metrics_port: int = Field(0, ge=0, le=65535, description="port for /metrics, /healthz, /readyz (0 = off)")
    metrics_host: str = Field("0.0.0.0", description="address the metrics port listens on")
    status_history: int = Field(
        50, ge=1, le=10000, description="completed and failed files the live view keeps (GET /status)"
    )
    request_timeout: Seconds = Field(30.0, gt=0, description="seconds before a Kafka request counts as failed")
    retry_backoff_max: Seconds = Field(30.0, gt=0, description="longest pause between retries, in seconds")
    shutdown_grace: Seconds = Field(10.0, ge=0, description="seconds SIGTERM waits for in-flight work")

    security_protocol: SecurityProtocol = Field("PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    ssl_cafile: Path | None = Field(None, description="CA bundle that signs the brokers' certificates")
    ssl_certfile: Path | None = Field(None, description="client certificate (PEM) for mutual TLS")
    ssl_keyfile: Path | None = Field(None, description="private key (PEM) of the client certificate")
    ssl_check_hostname: bool = Field(True, description="verify the broker's host name against its certificate")
    sasl_mechanism: SaslMechanism = Field("PLAIN", description="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER")
    sasl_username: str = Field("", description="SASL user name")
    sasl_password: SecretStr = Field(SecretStr(""), description="SASL password (never logged)")
    sasl_password_file: Path | None = Field(None, description="file holding the SASL password (a mounted Secret)")
    sasl_oauth_token_file: Path | None = Field(None, description="file holding an OAUTHBEARER token, re-read on use")

    @field_validator("*", mode="before")
    @classmethod
    def _no_empty_path(cls, value: Any, info: ValidationInfo) -> Any:
        # An unset value in a chart or a unit file arrives as "", which Path() would read as the working dir.
        field = cls.model_fields.get(info.field_name or "")
        annotation = field.annotation if field is not None else None
        is_path = annotation is not None and Path in getattr(annotation, "__args__", (annotation,))
        if is_path and isinstance(value, str) and not value.strip():
            raise ValueError("empty: give a path, or leave it out")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("topic")
    @classmethod
    def _topic_name(cls, value: str) -> str:
        return check_topic_name(value)

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers or any(not re.fullmatch(r"\[?[^\s\[\]]+\]?:\d{1,5}", s) for s in servers):
            raise ValueError("expected host:port[,host:port...]")
        return ",".join(servers)

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile", "sasl_password_file", "sasl_oauth_token_file")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @model_validator(mode="after")
    def _security(self) -> CommonSettings:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together (mutual TLS needs both)")
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism == "OAUTHBEARER":
                if self.sasl_oauth_token_file is None:
                    raise ValueError("sasl_mechanism OAUTHBEARER needs sasl_oauth_token_file")
            elif not self.sasl_username or not (self.sasl_password.get_secret_value() or self.sasl_password_file):
                raise ValueError(f"security_protocol {self.security_protocol} needs sasl_username and sasl_password")
        return self

    @cached_property
    def sasl_secret(self) -> SecretStr:
        """The SASL password: ``sasl_password``, or read once from ``sasl_password_file`` when the first client is
        made (settings themselves read no files)."""
        if self.sasl_password_file is None:
            return self.sasl_password
        try:
            return SecretStr(self.sasl_password_file.read_text().strip())
        except OSError as exc:
            raise SettingsError(f"invalid setting sasl_password_file: cannot read it: {exc.strerror or exc}") from None

    @property
    def servers(self) -> list[str]:
        return self.bootstrap_servers.split(",")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = _config_file.get()
        if config_file is None:
            return (init_settings, env_settings)
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=config_file))

    def describe(self) -> str:
        """The effective settings for the start-up log; secrets are masked by SecretStr."""
        shown = {name: str(value) for name, value in self.model_dump().items()}
        return ", ".join(f"{name}={value}" for name, value in shown.items() if value not in ("", "None"))


S = TypeVar("S", bound=CommonSettings)


def load_settings(cls: type[S], argv: Sequence[str], prog: str) -> S:
    """Build settings from flags, environment and ``--config``; SettingsError names what is wrong."""
    return load_settings_and_arguments(cls, argv, prog)[0]


def load_settings_and_arguments(
    cls: type[S],
    argv: Sequence[str],
    prog: str,
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None,
    description: str | None = None,
) -> tuple[S, dict[str, Any]]:
    """``load_settings`` for a command with ``arguments`` of its own besides the settings: their values too."""
    parser = argparse.ArgumentParser(prog=prog, description=description or cls.__doc__)
    arguments(parser)
    own = {action.dest for action in parser._actions if action.dest != "help"}
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML file of settings (flags > environment > file)"
    )
    parser.add_argument(
        "--check", action="store_true",
        help="check the settings, the broker, the topics and the permissions, say what would be done, and exit"
        " (0: ready, 1: the broker does not answer, 2: a setting to fix)",
    )  # fmt: skip
    cli: CliSettingsSource[S] = CliSettingsSource(
        cls, root_parser=parser, cli_kebab_case=True, cli_implicit_flags=True, cli_show_env_vars=True
    )
    _readable_help(parser, cls)
    namespace = parser.parse_args(list(argv))  # usage errors exit 2 with argparse's message
    config_file: Path | None = namespace.config
    extra = {name: getattr(namespace, name) for name in own}
    for name in own:
        delattr(namespace, name)
    del namespace.config, namespace.check  # --check is the app's to act on
    if config_file is not None and not config_file.is_file():
        raise SettingsError(f"invalid setting config: file not found: {config_file}")
    token = _config_file.set(config_file)
    try:
        return cls(_cli_settings_source=cli(parsed_args=namespace)), extra
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"invalid setting config: {config_file} is not valid TOML: {exc}") from None
    finally:
        _config_file.reset(token)


_METAVARS: dict[object, str] = {str: "TEXT", int: "N", float: "SECONDS", SecretStr: "SECRET", ByteSize: "SIZE"}
_NAMED_METAVARS = {"bootstrap_servers": "HOST:PORT[,...]", "metrics_port": "PORT", "metrics_host": "ADDRESS",
                   "topic": "TOPIC", "state_topic": "TOPIC", "file_pattern": "REGEX"}  # fmt: skip


def _readable_help(parser: argparse.ArgumentParser, cls: type[CommonSettings]) -> None:
    """Metavars a person reads (DIR, FILE, SIZE, SECONDS) for the type names pydantic-settings shows, and no
    empty default."""
    for action in parser._actions:
        name = action.dest.replace("-", "_")
        field = cls.model_fields.get(name)
        if field is None or action.choices is not None or action.nargs == 0:
            continue
        annotation = field.annotation
        if annotation is not None and Path in getattr(annotation, "__args__", (annotation,)):
            action.metavar = "DIR" if name.endswith("_dir") else "FILE"
        else:
            action.metavar = _NAMED_METAVARS.get(name) or _METAVARS.get(annotation) or action.metavar
        if action.help:
            for empty in (" (default: )", " (default: None)", " (default: null)"):
                action.help = action.help.replace(empty, "")
            action.help = re.sub(
                r"\(default factory: [^)]*\)", "(default: " + _factory_default(name) + ")", action.help
            )
            if annotation is ByteSize and isinstance(field.default, int):
                action.help = action.help.replace(
                    f"(default: {field.default})", f"(default: {size_text(field.default)})"
                )


def size_text(count: int) -> str:
    """A size as it would be written in a setting: ``32MiB``, ``1GiB``, ``1000`` where no unit fits exactly."""
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count and count % factor == 0:
            return f"{count // factor}{unit}"
    return str(count)


def _factory_default(name: str) -> str:
    return {"uploader_name": "this host's name"}.get(name, "computed at start")


def format_validation_error(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        name = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if not name:  # a rule across several settings names them in its message
            lines.append(f"invalid settings: {message}")
            continue
        if error["type"] == "missing":
            flag, variable = "--" + name.replace("_", "-"), ENV_PREFIX + name.upper()
            lines.append(f"invalid setting {name}: required: give {flag}, {variable} or {name} in the --config file")
            continue
        shown = "" if "password" in name or "input" not in error else _shown_input(error["input"])
        lines.append(f"invalid setting {name}: {message}{shown}")
    return "\n".join(lines)


# Variables with the prefix that are no daemon's setting, but are read by the project all the same.
OTHER_VARIABLES = frozenset({"STATUS_URL", "KAFKA_LIBS"})


def unknown_variables(classes: Iterable[type[BaseSettings]], environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each ``STREAMSEND_`` variable that names no setting of any daemon (a typo would otherwise
    run the daemon with a default), with the closest setting's variable."""
    known = {name.upper() for cls in classes for name in cls.model_fields} | OTHER_VARIABLES
    warnings = []
    for variable in sorted(os.environ if environ is None else environ):
        if not variable.startswith(ENV_PREFIX) or variable[len(ENV_PREFIX) :] in known:
            continue
        close = difflib.get_close_matches(variable[len(ENV_PREFIX) :], known, n=1, cutoff=0.6)
        hint = f"; did you mean {ENV_PREFIX}{close[0]}?" if close else ""
        warnings.append(f"Environment variable {variable} names no setting: ignored{hint}")
    return warnings


def _shown_input(value: Any) -> str:
    if isinstance(value, dict) or value is None:
        return ""
    return f" (got {str(value)[:80]!r})"
