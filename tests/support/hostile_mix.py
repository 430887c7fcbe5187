"""A mixed web of healthy and hostile feeds on loopback, for the issue's "hostile feeds" run.

Healthy: the demo sample's feeds (15 articles + a dead link, served by ``demo/webserver.py``).
Hostile, one feed each (:class:`HostileServer` on 127.0.0.1): billion laughs, quadratic entity
blow-up, a 300 MB body, a 10 GB gzip bomb, a server that stalls, 500, 429 with Retry-After, a redirect
loop, random bytes, a PDF, a feed whose entries point at a loopback host nobody allowed (127.0.0.2,
which logs any request) and at ``file:``/``gopher:``/``data:`` URLs, and an unknown ``.invalid`` host.
With the corpus present, the ill-formed feeds of ``feeds-illformed/illformed`` are served byte for byte
too (their entries link to made-up hosts such as ``http://link/``).

The fetcher runs over :class:`RecordingBackend` (connects to loopback only, records every attempt) and
a resolver that answers no name: no DNS query and no packet leaves the machine whatever the code does.

Run alone to measure time and memory (needs the Tansu binary)::

    /usr/bin/time -v .venv/bin/python -m tests.support.hostile_mix
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo.webserver import RunningServer, start_server
from newswire.config import Settings
from newswire.connectors.http import Fetcher, FetchSettings
from newswire.connectors.netguard import UnknownHost
from newswire.records import FeedSource
from tests.support.corpus_web import corpus_dir
from tests.support.hostile_server import (
    HostileServer,
    RecordingBackend,
    gzip_bomb,
    redirect,
    respond,
    stall,
    stream,
)
from tests.support.proc_memory import TreeMemory

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "demo" / "sample"
MiB = 1024 * 1024
RETRY_AFTER_S = 3600
STALL_S = 60.0

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>&lol9;</title><link>http://127.0.0.1/</link>
<item><title>&lol9;</title><link>__BASE__/laughs/1</link><description>&lol9;</description></item>
</channel></rss>"""

# 20,000 references to a 50 KB entity: 1 GB if anything expanded it.
QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "' + b"x" * 50_000 + b'">]>'
    b'<rss version="2.0"><channel><title>q</title><item><title>quadratic</title>'
    b"<link>__BASE__/quadratic/1</link><description>" + b"&a;" * 20_000 + b"</description></item></channel></rss>"
)


def inward_feed(forbidden_base: str) -> bytes:
    return f"""<?xml version="1.0"?><rss version="2.0"><channel><title>Points inward</title>
<link>http://127.0.0.1/</link>
<item><title>Internal admin page</title><link>{forbidden_base}/secret.html</link>
<guid isPermaLink="false">inward-1</guid>
<description>An entry whose link points at a loopback host nobody allowed; its own text is enough.</description>
</item>
<item><title>Local file</title><link>file:///etc/passwd</link><description>no</description></item>
<item><title>Gopher</title><link>gopher://{forbidden_base.split("//", 1)[1]}/1</link><description>no</description></item>
<item><title>Data</title><link>data:text/html,&lt;p&gt;hi&lt;/p&gt;</link><description>no</description></item>
</channel></rss>""".encode()


@dataclass(frozen=True)
class Expected:
    """What ``feeds status`` must say about a feed: the stage and reason code its last error starts with.

    ``reasons`` lists the codes that are acceptable; an empty tuple means the feed must be healthy.
    """

    stage: str
    reasons: tuple[str, ...]


@dataclass
class HostileWeb:
    healthy: RunningServer
    hostile: HostileServer
    forbidden: RunningServer
    corpus: RunningServer | None
    feeds: list[FeedSource]
    expected: dict[str, Expected]  # feed URL -> expected failure (failing feeds only)
    corpus_feeds: list[str] = field(default_factory=list)
    backend: RecordingBackend = field(default_factory=RecordingBackend)
    resolver_asked: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.hostile.url(path)

    def fetcher(self, settings: FetchSettings) -> Fetcher:
        async def resolve_nothing(host: str, port: int) -> list[str]:
            self.resolver_asked.append(host)
            raise UnknownHost(f"{host}: this test resolves no names")

        return Fetcher(settings, resolver=resolve_nothing, network_backend=self.backend)


def _illformed_files(corpus: Path) -> list[Path]:
    return sorted((corpus / "feeds-illformed" / "illformed").rglob("*.xml"))


@contextlib.contextmanager
def hostile_web(*, with_corpus: bool = True) -> Iterator[HostileWeb]:
    rng = random.Random(5)
    corpus = corpus_dir() if with_corpus else None
    with contextlib.ExitStack() as stack:
        healthy = stack.enter_context(start_server(SAMPLE))
        forbidden = stack.enter_context(start_server(None, "127.0.0.2"))
        forbidden.add_route("/secret.html", b"<html><body><p>internal admin page</p></body></html>")
        hostile = stack.enter_context(HostileServer())
        base = hostile.base_url.encode()
        rss = "application/rss+xml"
        hostile.route("/billion-laughs.xml", respond(BILLION_LAUGHS.replace(b"__BASE__", base), content_type=rss))
        hostile.route("/quadratic.xml", respond(QUADRATIC.replace(b"__BASE__", base), content_type=rss))
        hostile.route("/huge.xml", stream(300 * MiB, chunk=b"<item>" * 10_000))
        hostile.route("/bomb.xml", gzip_bomb(10 * 1024 * MiB))
        hostile.route("/stall.xml", stall(STALL_S, after_headers=False))
        hostile.route("/500.xml", respond(b"oops", 500))
        hostile.route("/429.xml", respond(b"slow down", 429, {"Retry-After": str(RETRY_AFTER_S)}))
        hostile.route("/loop.xml", redirect("/loop.xml"))
        hostile.route("/random.xml", respond(rng.randbytes(64 * 1024), content_type=rss))
        hostile.route("/feed.pdf", respond(b"%PDF-1.7\n" + rng.randbytes(32 * 1024), content_type=rss))
        hostile.route("/inward.xml", respond(inward_feed(forbidden.base_url), content_type=rss))
        corpus_server = None
        corpus_feeds: list[str] = []
        if corpus is not None:
            folder = corpus / "feeds-illformed" / "illformed"
            corpus_server = stack.enter_context(start_server(folder))
            corpus_feeds = [corpus_server.url("/" + p.relative_to(folder).as_posix()) for p in _illformed_files(corpus)]

        healthy_feeds = [healthy.url(f"/feeds/{name}") for name in ("courier.xml", "dispatch.xml", "continental.rdf")]
        expected = {
            healthy.url("/feeds/broken.xml"): Expected("parse", ("ill-formed", "not-a-feed")),
            hostile.url("/billion-laughs.xml"): Expected("parse", ("xml-entities",)),
            hostile.url("/quadratic.xml"): Expected("parse", ("xml-entities", "ill-formed", "")),
            hostile.url("/huge.xml"): Expected("fetch", ("too-large",)),
            hostile.url("/bomb.xml"): Expected("fetch", ("too-large",)),
            hostile.url("/stall.xml"): Expected("fetch", ("timeout",)),
            hostile.url("/500.xml"): Expected("fetch", ("http-500",)),
            hostile.url("/429.xml"): Expected("fetch", ("http-429",)),
            hostile.url("/loop.xml"): Expected("fetch", ("too-many-redirects",)),
            hostile.url("/random.xml"): Expected("parse", ("not-a-feed",)),
            hostile.url("/feed.pdf"): Expected("parse", ("not-a-feed",)),
            "http://feeds.nowhere.invalid/rss.xml": Expected("fetch", ("dns",)),
        }
        feeds = [FeedSource(u) for u in healthy_feeds]
        feeds += [FeedSource(u) for u in expected]
        feeds.append(FeedSource(hostile.url("/inward.xml")))
        feeds += [FeedSource(u) for u in corpus_feeds]
        yield HostileWeb(
            healthy=healthy,
            hostile=hostile,
            forbidden=forbidden,
            corpus=corpus_server,
            feeds=feeds,
            expected=expected,
            corpus_feeds=corpus_feeds,
        )


def hostile_settings(bootstrap: str, prefix: str, state_dir: Path, **overrides: Any) -> Settings:
    """Default limits (10 MiB feeds) but short timeouts, so the stalling server costs seconds."""
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topic_prefix": prefix,
        "state_dir": state_dir,
        "allow_hosts": frozenset({"127.0.0.1"}),
        "extract_workers": 2,
        "connect_timeout": 2.0,
        "read_timeout": 1.5,
        "total_timeout": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


def main() -> int:
    """The mixed run once, as a user would run it: prints the summary line, wall time and peak RSS."""
    from newswire.devbroker import DevBroker
    from newswire.live import run_once

    broker = DevBroker()
    broker.start()
    try:
        with tempfile.TemporaryDirectory() as tmp, hostile_web() as web:
            settings = hostile_settings(broker.bootstrap, "hostile", Path(tmp) / "state")
            started = time.monotonic()
            exclude = {broker.pid} if broker.pid else set()
            with TreeMemory(exclude=exclude) as memory:
                summary = run_once(settings, web.feeds, fetcher_factory=web.fetcher)
            elapsed = time.monotonic() - started
            print(summary.line())
            print(f"feeds: {len(web.feeds)} ({len(web.corpus_feeds)} from the ill-formed corpus)")
            print(f"wall time of run_once: {elapsed:.1f} s")
            own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"peak RSS: this process {own:.0f} MiB; with its extraction workers {memory.peak_mib:.0f} MiB "
                  "(sampled every 0.1 s, broker excluded)")
            print(f"bytes the hostile server sent: {web.hostile.bytes_sent / MiB:.1f} MiB")
            if "--status" in sys.argv:
                from newswire.connectors.state import StateStore

                with StateStore.in_dir(settings.state_dir) as store:
                    for state in store.feeds():
                        print(
                            f"{state.url[-48:]:48} fails={state.consecutive_failures} "
                            f"entries={state.entries_seen} next={state.schedule_reason} "
                            f"error={(state.last_error or '-')[:90]} page={state.last_page_error}"
                        )
    finally:
        broker.stop(grace_s=0)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    sys.exit(main())
