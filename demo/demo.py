"""`make demo`: a local broker, the bundled sample web on localhost, one pipeline run, the result read back.

Starts what it needs and stops everything it started, also on failure or Ctrl-C.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = ROOT / ".demo"
sys.path.insert(0, str(HERE))

from rich.console import Console
from rich.table import Table
from webserver import start_server

from newswire.connectors.kafka import KafkaSettings, consume
from newswire.devbroker import DevBroker, DevBrokerError, free_port

console = Console(width=max(Console().width, 150))


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    prefix = "news"
    try:
        broker_cm = DevBroker(port=free_port())
        broker = broker_cm.start()
    except DevBrokerError as exc:
        console.print(f"[red]demo: cannot start the dev broker: {exc}")
        return 1
    try:
        with start_server(HERE / "sample") as web:
            console.print(f"[bold]broker[/] {broker.bootstrap}   [bold]sample web[/] {web.base_url}")
            feeds = WORK / "feeds.opml"
            feeds.write_bytes(web.substitute((HERE / "sample" / "feeds.opml").read_bytes()))
            newswire = Path(sys.executable).with_name("newswire")
            command = [
                str(newswire), "run", "--once", "--all",
                "--feeds", str(feeds),
                "--bootstrap-servers", broker.bootstrap,
                "--topic-prefix", prefix,
                "--state-dir", str(WORK / "state"),
                "--allow-host", "127.0.0.1",
            ]  # fmt: skip
            console.print("[bold]$[/] newswire " + " ".join(command[1:]))
            started = time.monotonic()
            env = {**os.environ, "NO_COLOR": "1"}
            done = subprocess.run(command, env=env, check=False)
            console.print(f"newswire run exited {done.returncode} after {time.monotonic() - started:.1f} s")
            settings = KafkaSettings(bootstrap_servers=broker.bootstrap, topic_prefix=prefix)
            articles = [json.loads(r.value) for r in consume(settings, [f"{prefix}.articles"], from_beginning=True, timeout_s=1.5)]
            letters = [json.loads(r.value) for r in consume(settings, [f"{prefix}.deadletter"], from_beginning=True, timeout_s=1.0)]
            show(articles, letters)
            per_topic = {}
            for slug in ("afghanistan", "russia", "china", "civil-military"):
                topic = f"{prefix}.topic.{slug}"
                per_topic[slug] = sum(1 for _ in consume(settings, [topic], from_beginning=True, timeout_s=1.0))
            console.print("topic streams: " + ", ".join(f"{prefix}.topic.{k}: {v}" for k, v in per_topic.items()))
            return 0 if done.returncode == 0 and articles else 1
    finally:
        broker.stop()


def show(articles: list[dict[str, object]], letters: list[dict[str, object]]) -> None:
    table = Table(title=f"{len(articles)} articles read back from Kafka (news.articles)")
    table.add_column("title", overflow="fold")
    table.add_column("feed", overflow="fold")
    table.add_column("text from")
    table.add_column("words", justify="right")
    table.add_column("topics (score)", overflow="fold")
    for a in sorted(articles, key=lambda a: str(a["title"])):
        topics = ", ".join(f"{t['slug']} ({t['score']:.2f})" for t in a["topics"])  # type: ignore[attr-defined]
        feed = a["feed"]["title"] if isinstance(a["feed"], dict) else "-"
        table.add_row(str(a["title"]), str(feed), str(a["text_source"]), str(a["word_count"]), topics or "-")
    console.print(table)
    for letter in letters:
        console.print(f"[yellow]dead letter[/] {letter['stage']}: {letter['reason']} ({letter['url']})")


if __name__ == "__main__":
    sys.exit(main())
