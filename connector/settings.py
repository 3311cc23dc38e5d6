"""Settings: defaults here, overridden by a TOML file, overridden by ``CALSYNC_*`` variables.

Every setting is ``[section] key``; its environment variable is
``CALSYNC_<SECTION>_<KEY>`` (``CALSYNC_DATABASE_URL``, ``CALSYNC_WORKER_CONCURRENCY``),
with the short aliases below. ``config/calsync.toml`` documents every one with its
default; a test keeps that file and this module in step. Invalid settings raise one
``ConfigurationError`` that names every bad key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connector.errors import ConfigurationError

DEFAULT_CONFIG_PATH = Path("config/calsync.toml")
ENV_ALIASES = {"CALSYNC_SECRET_KEY": ("security", "secret_key")}


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def _page_size(value: Any) -> str | None:
    return None if 1 <= value <= 250 else "must be between 1 and 250 (Cal.com's largest page)"


def _port(value: Any) -> str | None:
    return None if 0 <= value <= 65535 else "must be a TCP port between 0 and 65535"


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def _database_url(value: Any) -> str | None:
    if value.startswith(("sqlite:///", "postgresql://", "postgres://")):
        return None
    return "must start with sqlite:/// or postgresql://"


def _http_url(value: Any) -> str | None:
    if value == "" or value.startswith(("http://", "https://")):
        return None
    return "must be an http:// or https:// URL"


def _time_zone(value: Any) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "must be an IANA time zone such as Europe/Berlin"
    return None


def _weekly_hours(value: Any) -> str | None:
    from connector.sandbox.schedule import WeeklySchedule

    try:
        WeeklySchedule.parse(value)
    except ValueError as exc:
        return str(exc)
    return None


def _control_token(value: Any) -> str | None:
    if value == "" or (len(value) >= 16 and value.isascii() and value.isprintable() and " " not in value):
        return None
    return "must be at least 16 printable ASCII characters without spaces (or empty: controls off)"


def _setting(default: Any, check: Callable[[Any], str | None] | None = None, secret: bool = False):
    return field(default=default, metadata={"check": check, "secret": secret})


@dataclass(frozen=True)
class ServerSettings:
    host: str = _setting("127.0.0.1")
    port: int = _setting(8000, _port)
    max_body_bytes: int = _setting(1_048_576, _positive)
    max_import_bytes: int = _setting(16_777_216, _positive)
    import_background_rows: int = _setting(500, _positive)
    access_log: bool = _setting(False)
    max_header_bytes: int = _setting(16_384, _positive)
    max_headers: int = _setting(100, _positive)
    keep_alive_seconds: float = _setting(5.0, _positive)
    request_timeout_seconds: float = _setting(30.0, _positive)
    max_connections: int = _setting(1000, _positive)


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = _setting("sqlite:///calsync.db", _database_url)


@dataclass(frozen=True)
class SecuritySettings:
    secret_key: str = _setting("", secret=True)


@dataclass(frozen=True)
class CalcomSettings:
    base_url: str = _setting("https://api.cal.com", _http_url)
    booker_url: str = _setting("https://cal.com", _http_url)
    connect_timeout_seconds: float = _setting(5.0, _positive)
    read_timeout_seconds: float = _setting(20.0, _positive)
    read_attempts: int = _setting(3, _positive)
    rate_limit_per_window: int = _setting(120, _positive)
    rate_limit_window_seconds: float = _setting(60.0, _positive)


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int = _setting(4, _positive)
    poll_interval_seconds: float = _setting(0.5, _positive)
    lease_seconds: int = _setting(120, _positive)
    max_attempts: int = _setting(10, _positive)
    backoff_base_seconds: float = _setting(5.0, _positive)
    backoff_max_seconds: float = _setting(3600.0, _positive)


@dataclass(frozen=True)
class SchedulerSettings:
    enabled: bool = _setting(True)
    pending_sweep_seconds: int = _setting(60, _positive)
    event_type_refresh_seconds: int = _setting(86_400, _positive)
    statistics_seconds: int = _setting(3_600, _positive)
    reconcile_seconds: int = _setting(600, _positive)
    full_reconcile_seconds: int = _setting(86_400, _positive)
    completion_sweep_seconds: int = _setting(60, _positive)
    briefing_seconds: int = _setting(300, _positive)
    reminder_seconds: int = _setting(30, _positive)
    briefing_lead_minutes: int = _setting(60, _positive)


@dataclass(frozen=True)
class ReconcileSettings:
    window_before_days: int = _setting(7, _non_negative)
    window_after_days: int = _setting(90, _non_negative)
    page_size: int = _setting(100, _page_size)


@dataclass(frozen=True)
class SandboxSettings:
    mode: str = _setting("auto", _one_of("auto", "on", "off"))
    url: str = _setting("", _http_url)
    time_zone: str = _setting("Europe/Berlin", _time_zone)
    weekly_hours: str = _setting("Mon-Fri 09:00-17:00", _weekly_hours)
    rate_limit: int = _setting(120, _positive)
    rate_limit_window_seconds: int = _setting(60, _positive)
    rate_limit_block_seconds: int = _setting(60, _non_negative)
    control_token: str = _setting("", _control_token, secret=True)


@dataclass(frozen=True)
class LogSettings:
    level: str = _setting("info", _one_of("debug", "info", "warning", "error"))
    format: str = _setting("json", _one_of("json", "text"))


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    calcom: CalcomSettings = field(default_factory=CalcomSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    log: LogSettings = field(default_factory=LogSettings)

    def replace(self, **sections: Mapping[str, Any]) -> Settings:
        """A copy with some keys changed: ``settings.replace(worker={"concurrency": 2})``."""
        return _build({name: dict(values) for name, values in sections.items()}, base=self)


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in fields(Settings)}  # type: ignore[misc]


def load(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Settings from defaults, then the TOML file, then ``CALSYNC_*`` variables."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("CALSYNC_CONFIG")
    raw: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    if path is not None or DEFAULT_CONFIG_PATH.exists():
        config_path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
        try:
            with config_path.open("rb") as handle:
                raw = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigurationError(f"configuration file not found: {config_path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{config_path} is not valid TOML: {exc}") from None
    for section, values in raw.items():
        if section not in SECTIONS:
            problems.append(f"[{section}]: unknown section")
        elif not isinstance(values, dict):
            problems.append(f"[{section}]: must be a table")
    raw = {s: dict(v) for s, v in raw.items() if s in SECTIONS and isinstance(v, dict)}
    for name, value in environ.items():
        target = ENV_ALIASES.get(name) or _env_target(name)
        if target is not None:
            section, key = target
            raw.setdefault(section, {})[key] = _EnvText(value)
    return _build(raw, problems=problems)


class _EnvText(str):
    """A value that came from the environment as text and still needs converting."""


def _env_target(name: str) -> tuple[str, str] | None:
    if not name.startswith("CALSYNC_"):
        return None
    rest = name[len("CALSYNC_") :].lower()
    for section, cls in SECTIONS.items():
        prefix = section + "_"
        if rest.startswith(prefix) and rest[len(prefix) :] in {f.name for f in fields(cls)}:
            return section, rest[len(prefix) :]
    return None


def _convert(value: Any, kind: type) -> Any:
    if isinstance(value, _EnvText):
        text = str(value).strip()
        if kind is bool:
            if text.lower() in {"1", "true", "yes", "on"}:
                return True
            if text.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError("must be true or false")
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        return str(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"must be of type {kind.__name__}")
    return value


def _build(
    raw: dict[str, dict[str, Any]],
    *,
    base: Settings | None = None,
    problems: list[str] | None = None,
) -> Settings:
    problems = list(problems or [])
    base = base or Settings()
    sections: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        current = getattr(base, section)
        values: dict[str, Any] = {f.name: getattr(current, f.name) for f in fields(cls)}
        known = {f.name: f for f in fields(cls)}
        for key, value in raw.get(section, {}).items():
            if key not in known:
                problems.append(f"{section}.{key}: unknown setting")
                continue
            spec = known[key]
            kind = type(spec.default)
            try:
                converted = _convert(value, kind)
            except ValueError as exc:
                problems.append(f"{section}.{key}: {exc}")
                continue
            check = spec.metadata.get("check")
            message = check(converted) if check else None
            if message:
                shown = "(hidden)" if spec.metadata.get("secret") else repr(converted)
                problems.append(f"{section}.{key} = {shown}: {message}")
                continue
            values[key] = converted
        sections[section] = cls(**values)
    if problems:
        raise ConfigurationError("invalid settings:\n  " + "\n  ".join(problems))
    return Settings(**sections)


def documented_defaults() -> dict[str, dict[str, Any]]:
    """Every setting and its default, for the test that keeps calsync.toml in step."""
    return {
        section: {f.name: f.default for f in fields(cls)} for section, cls in SECTIONS.items()
    }
