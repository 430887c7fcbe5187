"""Helpers shared by the pipeline's integration tests: settings for a test broker, the demo sample web."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from demo.webserver import RunningServer
from newswire.config import Settings
from newswire.connectors.kafka import KafkaSettings, Received
from newswire.contract import load_schema

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "demo" / "sample"
EXPECTED: dict[str, Any] = json.loads((SAMPLE / "expected.json").read_text("utf-8"))

ARTICLE_VALIDATOR = Draft202012Validator(load_schema("article-v1"))
DEADLETTER_VALIDATOR = Draft202012Validator(load_schema("deadletter-v1"))


def write_sample_feeds(web: RunningServer, path: Path) -> Path:
    """The demo sample's OPML, its links pointing at ``web``."""
    path.write_bytes(web.substitute((SAMPLE / "feeds.opml").read_bytes()))
    return path


def pipeline_settings(kafka: KafkaSettings, state_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "topic_prefix": kafka.topic_prefix,
        "state_dir": state_dir,
        "allow_hosts": frozenset({"127.0.0.1"}),
        "extract_workers": 2,
        "connect_timeout": 3.0,
        "read_timeout": 5.0,
        "total_timeout": 10.0,
    }
    values.update(overrides)
    return Settings(**values)


def decoded(messages: list[Received]) -> list[dict[str, Any]]:
    return [json.loads(m.value) for m in messages]


def schema_errors(message: dict[str, Any], *, deadletter: bool = False) -> list[str]:
    validator = DEADLETTER_VALIDATOR if deadletter else ARTICLE_VALIDATOR
    return [e.message for e in validator.iter_errors(message)]
