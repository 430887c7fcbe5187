"""Many generated feeds whose items overlap, served on loopback, for the scale-out tests and benchmark.

Feed ``i`` (of ``n``) lists 4 articles: ``2i``, ``2i+1`` and the two ``shift`` further on (mod ``2n``), so
every article is carried by exactly two feeds, about a third of the list apart: two workers leasing
different batches meet the same article. Pages are small HTML articles that trafilatura extracts. Feeds
and pages are spread over ``hosts`` (127.0.0.x), each answering after ``delay`` seconds.

    with start_feed_farm(300) as farm:
        farm.write_list(path); ...; farm.article_urls  # the 600 articles, as canonical URLs
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from demo.webserver import RunningServer, start_server

WORDS = (  # noqa: SIM905 -- a sentence reads better than a list of words
    "ministers met on tuesday to discuss the harbour expansion while unions warned that the plan would cost "
    "jobs in the northern districts where the shipyards have employed generations of families and where "
    "the local council has asked for a review of the budget before any contract is signed by the port "
    "authority which says the work will begin next spring if the financing holds"
).split()


@dataclass
class FeedFarm:
    servers: list[RunningServer]
    feeds: int
    per_feed: int = 4

    def _server(self, index: int) -> RunningServer:
        return self.servers[index % len(self.servers)]

    @property
    def feed_urls(self) -> list[str]:
        return [self._server(i).url(f"/feeds/{i}.xml") for i in range(self.feeds)]

    @property
    def article_urls(self) -> list[str]:
        return [self._server(a).url(f"/a/{a}.html") for a in range(2 * self.feeds)]

    def write_list(self, path: Path) -> Path:
        path.write_text("".join(f"{url}\n" for url in self.feed_urls), "utf-8")
        return path

    def feed_requests(self) -> Counter[str]:
        """Requests per feed path, over every host."""
        return Counter(r.path for s in self.servers for r in s.requests if r.path.startswith("/feeds/"))


# A one-topic taxonomy of the farm's own words: the built-in one is not what these tests are about.
TAXONOMY = """slug: harbour
name: Harbour works
threshold: 0.5
terms:
  - match: [harbour, shipyards]
    weight: 4.5
"""


def write_taxonomy(path: Path) -> Path:
    path.write_text(TAXONOMY, "utf-8")
    return path


def feed_articles(i: int, feeds: int) -> list[int]:
    total, shift = 2 * feeds, max(2 * feeds // 3, 2) & ~1
    return [2 * i, 2 * i + 1, (2 * i + shift) % total, (2 * i + 1 + shift) % total]


def _article(a: int) -> bytes:
    text = " ".join(WORDS[(a + k) % len(WORDS)] for k in range(150))
    paragraphs = "".join(f"<p>{text[j:j + 300]}.</p>" for j in range(0, len(text), 300))
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Article {a}</title></head>"
        f"<body><header><nav>Home | World</nav></header><article><h1>Article {a}</h1>{paragraphs}"
        f"</article><footer>(c) farm</footer></body></html>"
    ).encode()


def _feed(i: int, feeds: int, farm: FeedFarm) -> bytes:
    items = "".join(
        f"<item><title>Article {a}</title><link>{escape(farm._server(a).url(f'/a/{a}.html'))}</link>"
        f"<guid>farm-{a}</guid><pubDate>Tue, 03 Nov 2026 {a % 24:02d}:00:00 GMT</pubDate>"
        f"<description>Summary of article {a}.</description></item>"
        for a in feed_articles(i, feeds)
    )
    return (
        f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Feed {i}</title>"
        f"<link>http://farm.test/</link><description>farm</description>{items}</channel></rss>"
    ).encode()


@contextmanager
def start_feed_farm(feeds: int, *, hosts: tuple[str, ...] = ("127.0.0.1",), delay: float = 0.0) -> Iterator[FeedFarm]:
    with ExitStack() as stack:
        servers = [stack.enter_context(start_server(None, host, delay=delay)) for host in hosts]
        farm = FeedFarm(servers, feeds)
        for i in range(feeds):
            farm._server(i).add_route(f"/feeds/{i}.xml", _feed(i, feeds, farm), content_type="application/rss+xml")
        for a in range(2 * feeds):
            farm._server(a).add_route(f"/a/{a}.html", _article(a), content_type="text/html; charset=utf-8")
        yield farm
