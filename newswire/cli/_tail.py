"""``newswire tail``: print a topic's messages as they arrive."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from newswire.cli._common import BootstrapOpt, KafkaOpt, PrefixOpt, UserError, VerboseOpt, app, start
from newswire.config import check_bootstrap_servers, parse_kafka_options


@app.command()
def tail(
    topic: Annotated[str, typer.Argument(help="A topic slug (china), 'articles', 'deadletter', or a full topic name.")],
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="Start at the oldest message.")] = False,
    group: Annotated[str | None, typer.Option("--group", help="Join this consumer group.")] = None,
    max_messages: Annotated[int | None, typer.Option("--max", min=1, help="Stop after N messages.")] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0.0, help="Stop after N seconds without a message.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each message as one JSON line.")] = False,
    bootstrap_servers: BootstrapOpt = "127.0.0.1:9092",
    topic_prefix: PrefixOpt = "news",
    kafka_option: KafkaOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Print messages from a topic as they arrive."""
    start(verbose, None)
    from newswire.connectors.kafka import KafkaSettings, consume

    name = topic_name(topic_prefix, topic)
    from newswire.config import topic_chars_ok
    from newswire.contract import MAX_TOPIC_NAME

    if not topic.strip(".") or len(name) > MAX_TOPIC_NAME or not topic_chars_ok(name):
        # such a topic cannot exist: waiting for it would wait forever
        raise UserError(
            f"{name!r} cannot be a Kafka topic: use letters, digits, '.', '_' or '-' (up to {MAX_TOPIC_NAME})"
        )
    check_bootstrap_servers(bootstrap_servers)
    settings = KafkaSettings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=topic_prefix,
        client_config=parse_kafka_options(kafka_option or []),
    )
    for received in consume(
        settings, [name], group=group, from_beginning=from_beginning, timeout_s=timeout, max_messages=max_messages
    ):
        if as_json:
            sys.stdout.write(received.value.decode("utf-8", "replace") + "\n")
        else:
            sys.stdout.write(_describe(received.value) + "\n")
        sys.stdout.flush()


def topic_name(prefix: str, topic: str) -> str:
    if topic in {"articles", "deadletter"}:
        return f"{prefix}.{topic}"
    if "." in topic:
        return topic
    return f"{prefix}.topic.{topic}"


def _describe(value: bytes) -> str:
    try:
        data = json.loads(value)
    except ValueError:
        return value[:200].decode("utf-8", "replace")
    if data.get("schema", "").startswith("newswire.deadletter"):
        return f"DEAD {data.get('stage')}: {data.get('reason')} {data.get('url')}"
    topics = ",".join(t["slug"] for t in data.get("topics", [])) or "-"
    return f"{data.get('id', '')[:12]}  [{topics}]  ({data.get('text_source')})  {data.get('title', '')}"
