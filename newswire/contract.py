"""The message contract, schema version 1: defined here once.

Adding a field is a compatible change within version 1; renaming, removing or changing a field's
meaning makes version 2. ``schemas/article-v1.schema.json`` is the JSON Schema of the same thing and
tests validate published messages against it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal

ARTICLE_SCHEMA = "newswire.article/1"
DEADLETTER_SCHEMA = "newswire.deadletter/1"
CONTENT_TYPE = "application/json"

TextSource = Literal["page", "feed"]
Stage = Literal["fetch", "parse", "extract", "tag", "publish"]


def utc_iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix and second precision, the one time format on the wire."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(value: str | None) -> datetime | None:
    """An ISO 8601 string (WARC-Date, htmldate's output) as an aware UTC datetime; a value without a
    zone (or without a time) counts as UTC; None when absent or unreadable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class FeedRef:
    url: str
    title: str | None


@dataclass(frozen=True)
class Topic:
    slug: str
    score: float
    matches: dict[str, int]


@dataclass(frozen=True)
class Pipeline:
    version: str
    taxonomy: str
    extractor: str


class _Serialised:
    """UTF-8 JSON of a message dataclass, ``schema`` first: what a consumer reads before anything."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)  # type: ignore[call-overload]  # every subclass is a dataclass
        return {"schema": data.pop("schema"), **data}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class ArticleMessage(_Serialised):
    id: str
    url: str
    original_url: str
    feed: FeedRef | None
    guid: str | None
    title: str
    authors: list[str]
    published: str | None
    language: str | None
    site_name: str | None
    summary: str | None
    text: str
    text_source: TextSource
    content_hash: str
    word_count: int
    topics: list[Topic]
    fetched_at: str
    processed_at: str
    replayed: bool
    pipeline: Pipeline
    schema: str = ARTICLE_SCHEMA

    def headers(self) -> list[tuple[str, bytes]]:
        return message_headers(ARTICLE_SCHEMA, replayed=self.replayed)


@dataclass(frozen=True)
class DeadLetter(_Serialised):
    stage: Stage
    reason: str
    url: str | None
    feed_url: str | None
    at: str
    attempts: int = 1
    detail: str | None = None
    schema: str = field(default=DEADLETTER_SCHEMA)

    def headers(self) -> list[tuple[str, bytes]]:
        return message_headers(DEADLETTER_SCHEMA, replayed=False)


def message_headers(schema: str, *, replayed: bool) -> list[tuple[str, bytes]]:
    headers = [("content-type", CONTENT_TYPE.encode()), ("schema", schema.encode())]
    if replayed:
        headers.append(("replayed", b"true"))
    return headers


def load_schema(name: str = "article-v1") -> dict[str, Any]:
    """The JSON Schema shipped with the package (``article-v1`` or ``deadletter-v1``)."""
    text = resources.files("newswire").joinpath(f"schemas/{name}.schema.json").read_text("utf-8")
    result: dict[str, Any] = json.loads(text)
    return result


MAX_TOPIC_NAME = 249  # Kafka's limit on the length of a topic name


def topic_names(prefix: str) -> dict[str, str]:
    return {"articles": f"{prefix}.articles", "deadletter": f"{prefix}.deadletter"}


def topic_for(prefix: str, slug: str) -> str:
    return f"{prefix}.topic.{slug}"
