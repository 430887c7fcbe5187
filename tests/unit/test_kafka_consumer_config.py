"""The settings `tail` gives its consumer (connectors/kafka.py ``consume``)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from newswire.connectors import kafka
from newswire.connectors.kafka import KafkaSettings, consume


class _Built(Exception):
    pass


@pytest.fixture
def listener() -> Iterator[str]:
    """A loopback port that accepts connections: consume() probes the bootstrap server first."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield f"127.0.0.1:{server.getsockname()[1]}"


def _config(monkeypatch: pytest.MonkeyPatch, settings: KafkaSettings, group: str | None) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def construct(cls: type, config: dict[str, Any], settings: KafkaSettings) -> Any:
        seen.update(config)
        raise _Built

    monkeypatch.setattr(kafka, "_construct", construct)
    with pytest.raises(_Built):
        next(consume(settings, ["news.articles"], group=group))
    return seen


@pytest.mark.parametrize(
    ("group", "options", "session_ms"),
    [
        # Tansu held the first join of `tail --group` for 23 s at kafka-python's 45 s, ~6 s at 10 s
        ("analytics", {}, 10_000),
        ("analytics", {"session_timeout_ms": 30_000}, 30_000),  # the user's --kafka-option wins
        ("analytics", {"max_poll_interval_ms": 60_000}, None),  # kafka-python derives it (old brokers)
        (None, {}, None),  # no group, no session: kafka-python's default stands
    ],
)
def test_a_group_consumer_asks_for_a_10_s_session_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, listener: str, group: str | None, options: dict[str, Any], session_ms: int | None
) -> None:
    settings = KafkaSettings(bootstrap_servers=listener, client_config=options)
    config = _config(monkeypatch, settings, group)
    assert config.get("group_id") == group
    assert config.get("session_timeout_ms") == session_ms
