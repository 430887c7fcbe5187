"""Run configuration: one dataclass, filled by the CLI (each option also reads ``NEWSWIRE_*``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platformdirs import user_data_dir

from newswire.contract import MAX_TOPIC_NAME


class ConfigError(ValueError):
    """A bad option value (one-line message)."""


def default_state_dir() -> Path:
    return Path(user_data_dir("newswire", appauthor=False))


def check_bootstrap_servers(value: str) -> None:
    """``--bootstrap-servers``: HOST[:PORT] pairs separated by commas (ConfigError otherwise)."""
    if not value.strip():
        raise ConfigError("--bootstrap-servers is empty")
    for server in (s.strip() for s in value.split(",") if s.strip()):
        _, sep, port = server.rpartition(":")
        if sep and not server.endswith("]") and not (port.isdigit() and 0 < int(port) < 65536):
            raise ConfigError(f"--bootstrap-servers {server!r}: the port must be a number from 1 to 65535")


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "news"
    state_dir: Path = field(default_factory=default_state_dir)
    state_url: str | None = None
    archive_dir: Path | None = None  # None: <state_dir>/archive
    allow_hosts: frozenset[str] = frozenset()
    taxonomy: Path | None = None  # None: the taxonomy shipped in the package
    kafka_options: dict[str, Any] = field(default_factory=dict)
    partitions: int = 1  # of topics newswire creates; consumer groups scale up to this many members
    replication_factor: int = 1
    # many workers over one state store (docs/scaling.md): each run leases this many due feeds at a time
    # (0: all that are due), for this long; article claims last as long
    lease_batch: int = 0
    lease_seconds: float = 600.0
    # fetching
    user_agent_contact: str = "https://github.com/newswire/newswire"
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0
    max_feed_bytes: int = 10 * 1024 * 1024
    max_page_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    concurrency: int = 64  # overall; politeness is per_host (benchmarks/poll_bench.py: 10,000 feeds)
    per_host: int = 4
    fetch_pages: bool = True
    discover_feeds: bool = True  # a listed page that is HTML: look for its feed (docs/fetching.md)
    discovery_probes: int = 8  # feed candidates fetched at most per discovery
    # schedule (minutes; processors/schedule.py, docs/fetching.md); --interval is a new feed's interval
    poll_floor: float = 5.0
    poll_ceiling: float = 24 * 60.0
    entries_per_poll: float = 1.0
    rate_window: float = 7 * 24 * 60.0
    poll_jitter: float = 0.1  # fraction
    backoff_base: float = 10.0
    backoff_max: float = 24 * 60.0
    park_after: int = 10  # consecutive failures
    park_retry: float = 7 * 24 * 60.0
    retry_after_max: float = 7 * 24 * 60.0
    # processing
    extract_workers: int = 0  # 0: one per core
    publish_batch: int = 200
    archive: bool = True
    archive_max_bytes: int = 1024**3

    def __post_init__(self) -> None:
        if not topic_chars_ok(self.topic_prefix):
            raise ConfigError(f"--topic-prefix {self.topic_prefix!r}: use letters, digits, '.', '_' or '-'")
        if len(self.topic_prefix) > MAX_TOPIC_PREFIX:
            raise ConfigError(
                f"--topic-prefix is {len(self.topic_prefix)} characters; at most {MAX_TOPIC_PREFIX}, so that "
                f"'{{prefix}}.deadletter' fits Kafka's {MAX_TOPIC_NAME}"
            )
        check_bootstrap_servers(self.bootstrap_servers)
        # The fetch and schedule knobs are set by environment variables: errors name the variable.
        for name in ("connect_timeout", "read_timeout", "total_timeout", "poll_floor", "poll_ceiling",
                     "rate_window", "backoff_base", "backoff_max", "park_retry", "retry_after_max",
                     "entries_per_poll"):
            if not 0 < getattr(self, name) < math.inf:
                raise ConfigError(f"{_knob(name)} must be a positive number, got {getattr(self, name)!r}")
        for name, least in (("concurrency", 1), ("per_host", 1), ("max_feed_bytes", 1), ("max_page_bytes", 1),
                            ("max_redirects", 0), ("park_after", 1), ("discovery_probes", 0)):
            if getattr(self, name) < least:
                raise ConfigError(f"{_knob(name)} must be at least {least}, got {getattr(self, name)!r}")
        if self.poll_floor > self.poll_ceiling:
            raise ConfigError(
                f"{_knob('poll_floor')} ({self.poll_floor:g} min) exceeds {_knob('poll_ceiling')} "
                f"({self.poll_ceiling:g} min)"
            )
        if not 0 <= self.poll_jitter < 1:
            raise ConfigError(f"{_knob('poll_jitter')} must be a fraction in [0, 1)")
        if self.lease_batch < 0 or not 0 < self.lease_seconds < math.inf:
            raise ConfigError("--lease-batch must be at least 0 and --lease-seconds positive")
        if self.partitions < 1 or self.replication_factor < 1:
            raise ConfigError("--partitions and --replication-factor must be at least 1")

    @property
    def archive_path(self) -> Path:
        return self.archive_dir if self.archive_dir is not None else self.state_dir / "archive"


def settings_from_env(environ: dict[str, str] | None = None) -> Settings:
    """Settings from ``NEWSWIRE_*`` variables alone: what a Prefect worker running a deployment has."""
    import os

    env = dict(os.environ) if environ is None else environ
    values: dict[str, Any] = {}
    simple = {
        "NEWSWIRE_BOOTSTRAP_SERVERS": "bootstrap_servers",
        "NEWSWIRE_TOPIC_PREFIX": "topic_prefix",
        "NEWSWIRE_STATE_URL": "state_url",
        "NEWSWIRE_USER_AGENT_CONTACT": "user_agent_contact",
    }
    for var, key in simple.items():
        if env.get(var):
            values[key] = env[var]
    for var, key in (("NEWSWIRE_STATE_DIR", "state_dir"), ("NEWSWIRE_ARCHIVE_DIR", "archive_dir"),
                     ("NEWSWIRE_TAXONOMY", "taxonomy")):
        if env.get(var):
            values[key] = Path(env[var])
    if env.get("NEWSWIRE_ALLOW_HOSTS"):
        values["allow_hosts"] = frozenset(env["NEWSWIRE_ALLOW_HOSTS"].replace(",", " ").split())
    for var, key, kind in (("NEWSWIRE_PARTITIONS", "partitions", int),
                           ("NEWSWIRE_REPLICATION_FACTOR", "replication_factor", int),
                           ("NEWSWIRE_LEASE_BATCH", "lease_batch", int),
                           ("NEWSWIRE_LEASE_SECONDS", "lease_seconds", float)):
        if env.get(var):
            try:
                values[key] = kind(env[var])
            except ValueError:
                raise ConfigError(f"{var}={env[var]!r}: expected a number") from None
    if env.get("NEWSWIRE_KAFKA_OPTIONS"):
        values["kafka_options"] = parse_kafka_options([env["NEWSWIRE_KAFKA_OPTIONS"]])
    values.update(schedule_from_env(env))
    return Settings(**values)


#: Fetch and schedule knobs read from the environment by every command and worker (docs/fetching.md).
SCHEDULE_ENV: dict[str, tuple[str, type]] = {
    "NEWSWIRE_POLL_FLOOR": ("poll_floor", float),
    "NEWSWIRE_POLL_CEILING": ("poll_ceiling", float),
    "NEWSWIRE_ENTRIES_PER_POLL": ("entries_per_poll", float),
    "NEWSWIRE_RATE_WINDOW": ("rate_window", float),
    "NEWSWIRE_POLL_JITTER": ("poll_jitter", float),
    "NEWSWIRE_BACKOFF_BASE": ("backoff_base", float),
    "NEWSWIRE_BACKOFF_MAX": ("backoff_max", float),
    "NEWSWIRE_PARK_AFTER": ("park_after", int),
    "NEWSWIRE_PARK_RETRY": ("park_retry", float),
    "NEWSWIRE_RETRY_AFTER_MAX": ("retry_after_max", float),
    "NEWSWIRE_DISCOVERY_PROBES": ("discovery_probes", int),
    "NEWSWIRE_CONCURRENCY": ("concurrency", int),
    "NEWSWIRE_PER_HOST": ("per_host", int),
    "NEWSWIRE_MAX_FEED_BYTES": ("max_feed_bytes", int),
    "NEWSWIRE_MAX_PAGE_BYTES": ("max_page_bytes", int),
    "NEWSWIRE_MAX_REDIRECTS": ("max_redirects", int),
    "NEWSWIRE_USER_AGENT_CONTACT": ("user_agent_contact", str),
    "NEWSWIRE_CONNECT_TIMEOUT": ("connect_timeout", float),
    "NEWSWIRE_READ_TIMEOUT": ("read_timeout", float),
    "NEWSWIRE_TOTAL_TIMEOUT": ("total_timeout", float),
}


def _knob(name: str) -> str:
    """How a user sets a Settings field that has no option: its environment variable."""
    return next((var for var, (key, _) in SCHEDULE_ENV.items() if key == name), name.replace("_", "-"))


def schedule_from_env(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Settings values for the fetch limits and the schedule from ``NEWSWIRE_*`` variables (minutes for
    intervals, bytes for sizes, seconds for timeouts)."""
    import os

    env = dict(os.environ) if environ is None else environ
    values: dict[str, Any] = {}
    for var, (key, kind) in SCHEDULE_ENV.items():
        raw = env.get(var, "").strip()
        if raw:
            try:
                values[key] = kind(raw)
            except ValueError:
                raise ConfigError(f"{var}={raw!r}: expected {'a whole number' if kind is int else 'a number'}") from None
    # read by the extraction workers themselves; checked here so that a typo is an error, not "on"
    speedups = env.get("NEWSWIRE_TRAFILATURA_SPEEDUPS", "").strip().lower()
    if speedups and speedups not in _SWITCH_WORDS:
        raise ConfigError(f"NEWSWIRE_TRAFILATURA_SPEEDUPS={speedups!r}: expected 1 or 0 (on/off, true/false, yes/no)")
    return values


_SWITCH_WORDS = frozenset({"1", "0", "on", "off", "true", "false", "yes", "no"})


def settings_to_params(settings: Settings) -> dict[str, Any]:
    """JSON-able form, for Prefect flow parameters."""
    from dataclasses import asdict

    params = asdict(settings)
    for key, value in params.items():
        if isinstance(value, Path):
            params[key] = str(value)
        elif isinstance(value, frozenset):
            params[key] = sorted(value)
    return params


def settings_from_params(params: dict[str, Any]) -> Settings:
    values = dict(params)
    for key in ("state_dir", "archive_dir", "taxonomy"):
        if values.get(key) is not None:
            values[key] = Path(values[key])
    if "allow_hosts" in values:
        values["allow_hosts"] = frozenset(values["allow_hosts"])
    return Settings(**values)


# the longest fixed topic name is "{prefix}.deadletter"
MAX_TOPIC_PREFIX = MAX_TOPIC_NAME - len(".deadletter")
_TOPIC_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def topic_chars_ok(text: str) -> bool:
    """Non-empty and only the characters Kafka allows in a topic name (letters, digits, '.', '_', '-')."""
    return bool(text) and all(c in _TOPIC_CHARS for c in text)


def parse_kafka_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs passed through to kafka-python (security_protocol, sasl_*, ssl_*...)."""
    options: dict[str, Any] = {}
    for item in items:
        for part in (p for p in item.split(";") if p.strip()):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"--kafka-option {part!r}: expected KEY=VALUE")
            options[key.strip()] = _coerce(value.strip())
    return options


def _coerce(value: str) -> Any:
    if value.lower() in {"true", "false"}:
        return value.lower() == "true"
    try:
        return int(value)
    except ValueError:
        return value
