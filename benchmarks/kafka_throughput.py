"""Producer throughput of newswire's Publisher (acks=all, idempotent) against a Tansu dev broker.

    .venv/bin/python benchmarks/kafka_throughput.py [--seconds 2.5] [--size 5120] [--bootstrap HOST:PORT]

Each configuration gets a fresh Tansu on a loopback port (Tansu keeps everything in memory, so a
long run would grow it without bound) and sends batches through ``Publisher.send_batch`` (which
waits for every acknowledgement) for ``--seconds``. With ``--bootstrap`` an existing broker is used
instead. Prints one row per configuration; the default run takes about 15 s.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newswire.connectors.kafka import KafkaSettings, Outgoing, Publisher
from newswire.devbroker import DevBroker

SAMPLE_TEXT = (
    "the minister said on tuesday that talks with officials in kabul moscow and beijing would resume "
    "after the army council met amid reports of troop movements near the border while analysts warned "
    "that sanctions trade and energy markets remained volatile across the region this week"
)
WORDS = SAMPLE_TEXT.split()


@dataclass(frozen=True)
class Config:
    name: str
    batch: int
    client_config: dict[str, Any] = field(default_factory=dict)


CONFIGS = [
    Config("defaults (linger 5 ms, 256 KiB batches)", 500),
    Config("linger 20 ms, 1 MiB batches", 500, {"linger_ms": 20, "batch_size": 1024 * 1024}),
    Config("defaults, gzip", 500, {"compression_type": "gzip"}),
    Config("defaults, send_batch of 20", 20),
]


def article_like(size: int, rng: random.Random) -> bytes:
    """JSON-ish text of about ``size`` bytes: compressible like a real article message."""
    words: list[str] = []
    length = 0
    while length < size - 40:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return ('{"schema": "newswire.article/1", "text": "' + " ".join(words) + '"}').encode()


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@contextmanager
def broker_for(bootstrap: str | None) -> Iterator[tuple[str, int | None]]:
    if bootstrap:
        yield bootstrap, None
        return
    with DevBroker() as dev:
        yield dev.bootstrap, dev.pid


def run(config: Config, args: argparse.Namespace, bootstrap: str, pid: int | None) -> dict[str, Any]:
    rng = random.Random(7)
    payloads = [article_like(args.size, rng) for _ in range(64)]
    settings = KafkaSettings(
        bootstrap_servers=bootstrap,
        topic_prefix=f"bench{int(time.time() * 1000)}",
        client_config=dict(config.client_config),
    )
    topic = settings.topic("articles")
    sent = failed = 0
    sent_bytes = 0
    with Publisher(settings) as publisher:
        publisher.ensure_topics([topic])
        publisher.send_batch([Outgoing(topic, b"warmup", payloads[0], [])])
        cpu0, wall0 = time.process_time(), time.perf_counter()
        n = 0
        while time.perf_counter() - wall0 < args.seconds:
            batch = [
                Outgoing(
                    topic,
                    f"{n + i:016x}".encode(),
                    payloads[(n + i) % len(payloads)],
                    [("content-type", b"application/json"), ("schema", b"newswire.article/1")],
                )
                for i in range(config.batch)
            ]
            n += len(batch)
            for result in publisher.send_batch(batch):
                if result.ok:
                    sent += 1
                    sent_bytes += len(result.item.value)
                else:
                    failed += 1
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "msgs/s": sent / wall,
        "MB/s": sent_bytes / wall / 1e6,
        "msgs/cpu-s": sent / cpu if cpu > 0 else float("nan"),
        "sent": sent,
        "failed": failed,
        "broker RSS MB": rss_mb(pid),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=2.5, help="sending time per configuration")
    parser.add_argument("--size", type=int, default=5120, help="message value size in bytes")
    parser.add_argument("--bootstrap", help="use this broker instead of starting Tansu per configuration")
    args = parser.parse_args(argv)

    try:
        import crc32c  # noqa: F401

        crc = "crc32c (C)"
    except ImportError:
        crc = "pure-Python CRC (slow: pip install crc32c)"
    print(f"value {args.size} B, {args.seconds:g} s per configuration, checksums: {crc}")
    header = (
        f"{'configuration':<42} {'msgs/s':>9} {'MB/s':>7} {'msgs/cpu-s':>11} "
        f"{'sent':>8} {'failed':>6} {'broker RSS':>10}"
    )
    print(header)
    print("-" * len(header))
    for config in CONFIGS:
        with broker_for(args.bootstrap) as (bootstrap, pid):
            row = run(config, args, bootstrap, pid)
        rss = f"{row['broker RSS MB']:.0f} MB" if row["broker RSS MB"] is not None else "-"
        print(
            f"{config.name:<42} {row['msgs/s']:>9,.0f} {row['MB/s']:>7.1f} {row['msgs/cpu-s']:>11,.0f} "
            f"{row['sent']:>8,} {row['failed']:>6} {rss:>10}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
