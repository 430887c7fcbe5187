"""Cycles counted by how they ended: a broker outage is visible to Prometheus, not a quiet news day."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from newswire.config import Settings
from newswire.connectors.kafka import BrokerUnavailable
from newswire.live import run_leased
from newswire.metrics import metrics
from newswire.records import FeedSource


def _count(outcome: str) -> float:
    metrics()  # registered on first use
    return REGISTRY.get_sample_value("newswire_cycles_total", {"outcome": outcome}) or 0.0


def test_a_cycle_the_broker_is_down_for_counts_as_unavailable(tmp_path: Path) -> None:
    before, completed = _count("unavailable"), _count("completed")
    settings = Settings(bootstrap_servers="127.0.0.1:1", state_dir=tmp_path / "s")  # nothing listens on port 1
    with pytest.raises(BrokerUnavailable):
        run_leased(settings, [FeedSource("http://127.0.0.1:1/feed.xml")])
    assert _count("unavailable") == before + 1
    assert _count("completed") == completed
