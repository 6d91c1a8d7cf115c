"""The daemon's configuration: a TOML file, overridden by INBOX_* environment variables.

Validated at the edge, before anything starts: every problem in the file is reported at once
with the file, the key and what is wrong, including the settings of each connector (each
connector declares its own pydantic model, the way Home Assistant integrations do).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from inbox.secrets import SecretSource

DEFAULT_LANGUAGES = ("en", "fi", "et", "sv", "de", "ru", "el")
SYSTEM_CONFIG = Path("/etc/inbox/inbox.toml")


def default_data_dir() -> Path:
    """systemd's StateDirectory= when running as a service, else the XDG data home."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0])
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "inbox"


class ThreadingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: A reply found only by its subject joins a conversation whose last message is this recent.
    subject_window_days: float = Field(default=14, gt=0)
    #: A customer's message reopens a closed conversation within this window; later it starts
    #: a new conversation linked to the old one.
    reopen_window_days: float = Field(default=7, ge=0)


class LoggingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["debug", "info", "warning", "error"] = "info"
    #: auto: readable on a terminal, JSON lines otherwise (journald, files, pipes).
    format: Literal["auto", "json", "console"] = "auto"


def default_workers() -> int:
    """CPUs this process may run on (systemd's CPUAffinity= and cgroups narrow it), up to 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


class IngestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Messages per transaction. Larger batches amortize commits; smaller ones lose less work
    #: to a crash and hold the SQLite write lock for less time.
    batch_size: int = Field(default=200, ge=1, le=10_000)
    #: A message larger than this is stored raw-only with a note, never dropped.
    max_message_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    #: Processes that normalize the next batches while one is stored (0: all in one process).
    #: Default: one per CPU, up to 4. Measured on two cores (bench/ingest.py): two workers beat
    #: one by 10-15% even though the main process then shares a core; past four, the main
    #: process (storing) is the bound.
    workers: int = Field(default_factory=lambda: default_workers(), ge=0, le=32)
    #: Several daemons on one store: a connector's upstream is polled by the one holding its
    #: lease; another takes over this long after the holder died (at once after it stopped).
    lease_seconds: float = Field(default=60, ge=5, le=3600)
    #: A connector that failed is retried after 2, 4, 8, ... seconds (with jitter), at most
    #: this long apart: how soon an upstream that is back again is read.
    retry_max_seconds: float = Field(default=300, ge=1, le=3600)
    #: Candidate languages for detection (ISO 639-1). Fewer candidates: faster and surer.
    languages: list[str] = Field(default_factory=lambda: list(DEFAULT_LANGUAGES))

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, codes: list[str]) -> list[str]:
        from inbox.normalize.language import supported_codes

        unknown = sorted(set(code.lower() for code in codes) - supported_codes())
        if unknown:
            raise ValueError(f"unknown ISO 639-1 codes {unknown} (e.g. en, fi, et, sv, ru, el)")
        return [code.lower() for code in codes]


class SlackSettings(BaseModel):
    """The Slack app that pings agents (and, with the slack connector, reads chats)."""

    model_config = ConfigDict(extra="forbid")

    #: The bot token (xoxb-...), from a file, the environment or a systemd credential.
    #: Without it, nothing is sent: outbox rows wait (`inbox outbox list` shows them).
    bot_token: SecretSource | None = None
    #: Slack's Web API; other values are for tests and proxies.
    api_url: str = "https://slack.com/api/"
    #: A link to the conversation in pings: the web desk's, "https://desk.example.com/desk/c/{id}".
    desk_url: str = ""
    #: Pings sent side by side (each Slack channel still gets them in order).
    senders: int = Field(default=4, ge=1, le=32)
    #: Our own pace per Slack channel (an agent's DM, a team's channel): Slack takes about one
    #: post a second to a channel, with short bursts. 0: no pacing (Retry-After still holds).
    per_channel_rate: float = Field(default=1.0, ge=0)
    per_channel_burst: int = Field(default=4, ge=1, le=100)
    #: Attempts before a ping that keeps failing is marked dead (rate limits do not count).
    max_attempts: int = Field(default=8, ge=1, le=100)
    timeout_seconds: float = Field(default=10, gt=0)
    #: The app's signing secret: with it, agents answer in the threads of their pings
    #: (Events API, `message.im`, Request URL ending in `events_path`).
    signing_secret: SecretSource | None = None
    events_path: str = "/webhooks/slack/agents"
    #: The buttons on pings (the app's Interactivity Request URL ends in this).
    actions_path: str = "/webhooks/slack/actions"


class WebSettings(BaseModel):
    """The daemon's HTTP side: webhooks (Slack's Events API, Twilio), /healthz and /metrics.
    Started by `inbox run` (not --once). Put webhooks behind a TLS proxy; it speaks plain HTTP."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: host:port to listen on. Keep 127.0.0.1 unless a proxy on another host forwards to it.
    listen: str = Field(default="127.0.0.1:8025", pattern=r"^\[?[0-9A-Za-z.:-]*\]?:[0-9]{1,5}$")
    #: Larger requests are refused with 413 before they are read.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    threads: int = Field(default=4, ge=1, le=64)

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)


class DeskSettings(BaseModel):
    """The agents' web desk at /desk on the daemon's web server (`[web] listen`). Off until a
    user exists (`inbox desk passwd NAME`) or a trusted proxy names them; behind a TLS proxy."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: "password": users log in with the argon2 hashes of `users_file`; "proxy": a reverse
    #: proxy that authenticated them names them in `proxy_header`.
    auth: Literal["password", "proxy"] = "password"
    #: One user a line, `name:role:argon2-hash` (role agent or admin), written by
    #: `inbox desk passwd`. Default: desk-users in data_dir.
    users_file: Path | None = None
    proxy_header: str = Field(default="X-Remote-User", pattern=r"^[A-Za-z0-9-]{1,64}$")
    #: The proxy's addresses: the header of any other client is ignored.
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    #: Signs the session cookies. Default: a random key kept in data_dir (desk-secret, 0600).
    session_secret: SecretSource | None = None
    session_hours: float = Field(default=12, gt=0, le=24 * 30)
    #: Send the cookie over HTTPS only: true whenever the proxy in front speaks TLS.
    secure_cookies: bool = False
    #: The queue page asks for news this often (seconds).
    refresh_seconds: float = Field(default=5, ge=1, le=600)
    page_size: int = Field(default=50, ge=5, le=500)


class ConnectorSettings(BaseModel):
    """What every connector entry has; the rest is validated by the connector's own model."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    type: str
    enabled: bool = True
    poll_seconds: float = Field(default=30, gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INBOX_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    database_url: str = ""
    data_dir: Path = Field(default_factory=default_data_dir)
    rules_file: Path | None = None
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    threading: ThreadingSettings = Field(default_factory=ThreadingSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    desk: DeskSettings = Field(default_factory=DeskSettings)
    connectors: list[ConnectorSettings] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init arguments; the environment must win over them so
        # that INBOX_DATABASE_URL overrides what the file says (12-factor, systemd Environment=).
        return (env_settings, init_settings)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'inbox.db'}"

    @property
    def desk_users_file(self) -> Path:
        return self.desk.users_file or self.data_dir / "desk-users"


class ConfigError(Exception):
    """The configuration cannot be used. `problems` holds one line per problem."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(f"{source}: {problem}" for problem in self.problems))


@dataclass(frozen=True)
class LoadedConfig:
    settings: Settings
    #: The file it came from, or "" for the built-in defaults.
    path: str


def find_config(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    from_env = os.environ.get("INBOX_CONFIG")
    if from_env:
        return Path(from_env)
    if SYSTEM_CONFIG.is_file():
        return SYSTEM_CONFIG
    return None


def load_config(
    path: Path | None = None, *, overrides: dict[str, Any] | None = None
) -> LoadedConfig:
    """Read, merge with the environment, and validate. Raises ConfigError with every problem."""
    found = find_config(path)
    values: dict[str, Any] = {}
    source = str(found) if found else "(defaults)"
    if found is not None:
        values = _read_toml(found)
        base = found.parent
        for key in ("data_dir", "rules_file"):
            if isinstance(values.get(key), str):
                values[key] = str((base / values[key]).expanduser())
    values.update(overrides or {})
    try:
        settings = Settings(**values)
    except ValidationError as error:
        raise ConfigError(source, _describe(error)) from None
    problems = _check_connector_names(settings)
    if problems:
        raise ConfigError(source, problems)
    return LoadedConfig(settings=settings, path=str(found) if found else "")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(str(path), [f"not valid TOML: {error}"]) from None
    except OSError as error:
        raise ConfigError(str(path), [f"cannot read: {error.strerror}"]) from None


def _describe(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            problems.append(f"key '{key}': unknown setting")
        else:
            problems.append(f"key '{key}': {item['msg']}")
    return problems


def _check_connector_names(settings: Settings) -> list[str]:
    seen: set[str] = set()
    problems = []
    for index, connector in enumerate(settings.connectors):
        if connector.name in seen:
            problems.append(f"key 'connectors.{index}.name': '{connector.name}' is used twice")
        seen.add(connector.name)
    return problems
