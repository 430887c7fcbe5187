"""The poll stage of a live run: fetch one feed politely, parse it off the event loop, discover its feed.

* Conditional GET with the stored validators (ETag, Last-Modified) of the URL actually polled (the
  listed one, or the feed discovery found on it).
* A 200 whose body hashes like the last one is "unchanged" and not parsed again (servers that ignore
  conditional headers).
* Parsing runs in the process pool (feedparser is CPU-bound: at ~100 documents/s it would stall every
  other fetch of the cycle if it ran on the event loop).
* A listed URL that answers with an HTML page goes through feed discovery
  (:mod:`newswire.processors.discovery`): its ``<link rel="alternate">`` feeds, then common paths, each
  fetched through the same guarded fetcher, one at a time, at most ``discovery_probes``; the first that
  parses as a feed is used and remembered (``discovered_url`` in the feed's state).
* The body is dropped once archived and parsed (only its hash is kept), so a cycle over 10,000 feeds
  does not hold 10,000 documents.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from newswire.pipeline import FeedPoll, body_hash
from newswire.processors.discovery import FeedLink, candidates, looks_like_html
from newswire.processors.feeds import FeedParseError, parse_feed
from newswire.records import FeedSource, FeedState, FetchResult, ParsedFeed

log = logging.getLogger(__name__)

FetchLogRow = tuple[datetime, str, str, int | None, str | None, int]
#: ``fetch(url, kind=..., etag=..., last_modified=...)``, as :meth:`Fetcher.fetch`.
Fetch = Callable[..., Awaitable[FetchResult]]

DEFAULT_DISCOVERY_PROBES = 8


@dataclass(frozen=True)
class ParseFailure:
    reason: str  # FeedParseError's reason, or "ill-formed"
    detail: str


def parse_document(body: bytes, url: str, content_type: str | None) -> ParsedFeed | ParseFailure:
    """parse_feed for a pool worker: failures come back as values (FeedParseError does not pickle)."""
    try:
        parsed: ParsedFeed = parse_feed(body, url, content_type)
    except FeedParseError as exc:
        return ParseFailure(exc.reason, exc.detail)
    if parsed.bozo and not parsed.entries:
        # ill-formed and nothing salvageable: a broken feed, not an empty one
        return ParseFailure("ill-formed", parsed.bozo[:300])
    return parsed


@dataclass
class Poller:
    """What polling needs from the run: the fetcher, the pool, the archive, the fetch log."""

    fetch: Fetch
    executor: Executor | None = None  # None: parse on the calling thread (CLI, tests)
    archive_write: Callable[[FetchResult, Literal["feed", "page"]], None] | None = None
    fetch_log: list[FetchLogRow] = field(default_factory=list)
    discover: bool = True
    discovery_probes: int = DEFAULT_DISCOVERY_PROBES

    async def get(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        result = await self.fetch(url, kind="feed", etag=etag, last_modified=last_modified)
        self.fetch_log.append((result.fetched_at, "feed", url, result.status, result.error, len(result.body)))
        if self.archive_write is not None and result.ok:
            self.archive_write(result, "feed")
        return result

    async def parse(self, result: FetchResult) -> ParsedFeed | ParseFailure:
        content_type = result.headers.get("content-type")
        if self.executor is None:
            return parse_document(result.body, result.final_url, content_type)
        loop = asyncio.get_running_loop()
        outcome: ParsedFeed | ParseFailure = await loop.run_in_executor(
            self.executor, parse_document, result.body, result.final_url, content_type
        )
        return outcome

    async def poll(self, feed: FeedSource, previous: FeedState | None) -> FeedPoll:
        """One feed: never raises for anything the network or the document does."""
        url = (previous.discovered_url if previous else None) or feed.url
        result = await self.get(
            url,
            etag=previous.etag if previous else None,
            last_modified=previous.last_modified if previous else None,
        )
        item = FeedPoll(feed=feed, previous=previous, result=result, fetched_url=url)
        if previous is not None and previous.discovered_url and url == previous.discovered_url:
            item.discovered = url
        if result.not_modified:
            return item
        if not result.ok:
            item.error, item.detail = result.error or f"http-{result.status}", result.detail
            if item.discovered and result.status in (404, 410):
                item.discovered = None  # the found feed is gone: start from the listed page next time
            return item
        digest = body_hash(result.body)
        item.body_hash = digest
        if previous is not None and previous.body_hash == digest:
            item.unchanged = True
            item.result = replace(result, body=b"")
            return item
        outcome = await self.parse(result)
        if (
            isinstance(outcome, ParseFailure)
            and outcome.reason == "not-a-feed"
            and self.discover
            and looks_like_html(result.body, result.headers.get("content-type"))
        ):
            found = await self.discover_from(result)
            if found.chosen is not None and found.result is not None and found.parsed is not None:
                log.info("feed discovery url=%s chose=%s", feed.url, found.chosen.url)
                item.discovered = found.chosen.url
                item.result = result = found.result
                item.body_hash = digest = body_hash(result.body)
                outcome = found.parsed
            else:
                outcome = ParseFailure(
                    "no-feed-found",
                    f"an HTML page, and none of its {len(found.tried)} feed candidates tried "
                    "(<link rel=alternate>, common paths) is a feed",
                )
        item.result = replace(result, body=b"")
        if isinstance(outcome, ParseFailure):
            item.error, item.stage, item.detail = outcome.reason, "parse", outcome.detail
            return item
        item.parsed = outcome
        return item

    async def discover_from(self, page: FetchResult) -> Discovery:
        """Try the feed candidates of an HTML page in order; the first that parses as a feed wins."""
        found = Discovery(page_url=page.final_url)
        found.candidates = candidates(page.body, page.final_url, page.headers.get("content-type"))
        for link in found.candidates[: self.discovery_probes]:
            result = await self.get(link.url)
            if not result.ok:
                found.tried.append((link, result.error or f"http-{result.status}"))
                continue
            outcome = await self.parse(result)
            if isinstance(outcome, ParseFailure):
                found.tried.append((link, f"parse: {outcome.reason}"))
                continue
            found.tried.append((link, "feed"))
            found.chosen, found.result, found.parsed = link, result, outcome
            break
        return found


def interleave_by_host(urls: Sequence[str]) -> list[int]:
    """Indices of ``urls`` in round-robin order over their hosts (first host's first URL, second
    host's first URL, ...): consecutive fetches go to different servers."""
    queues: dict[str, deque[int]] = {}
    for index, url in enumerate(urls):
        queues.setdefault(_host(url), deque()).append(index)
    order: list[int] = []
    rounds = list(queues.values())
    while rounds:
        for queue in rounds:
            order.append(queue.popleft())
        rounds = [q for q in rounds if q]
    return order


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


async def poll_feeds(
    poller: Poller, feeds: Sequence[FeedSource], known: Mapping[str, FeedState], *, per_host: int
) -> list[FeedPoll]:
    """Poll every feed of ``feeds``; results in the order given.

    Started host by host in turn, and at most ``per_host`` feeds of one host at a time *before* they
    reach the fetcher: a feed waiting for its host must not sit on one of the fetcher's overall slots,
    or a list with hundreds of feeds on one host would poll four at a time.
    """
    gates: dict[str, asyncio.Semaphore] = {}

    def url_of(feed: FeedSource) -> str:
        previous = known.get(feed.url)
        return (previous.discovered_url if previous else None) or feed.url

    async def gated(feed: FeedSource) -> FeedPoll:
        gate = gates.setdefault(_host(url_of(feed)), asyncio.Semaphore(per_host))
        async with gate:
            return await poller.poll(feed, known.get(feed.url))

    order = interleave_by_host([url_of(f) for f in feeds])
    results = await asyncio.gather(*(gated(feeds[i]) for i in order))
    polls: list[FeedPoll | None] = [None] * len(feeds)
    for index, result in zip(order, results):
        polls[index] = result
    return [p for p in polls if p is not None]


@dataclass
class Discovery:
    """What discovery on one page found and tried, and which feed it chose (None: no feed)."""

    page_url: str
    candidates: list[FeedLink] = field(default_factory=list)
    tried: list[tuple[FeedLink, str]] = field(default_factory=list)  # (candidate, "feed" or why not)
    chosen: FeedLink | None = None
    result: FetchResult | None = None
    parsed: ParsedFeed | None = None


async def discover(poller: Poller, url: str) -> Discovery:
    """``newswire feeds discover``: is ``url`` a feed, or which feed does its page lead to?"""
    result = await poller.get(url)
    if not result.ok:
        found = Discovery(page_url=url)
        found.tried.append((FeedLink(url, "given", source="given"), result.error or f"http-{result.status}"))
        return found
    outcome = await poller.parse(result)
    if isinstance(outcome, ParsedFeed):
        found = Discovery(page_url=url, chosen=FeedLink(result.final_url, outcome.format or "feed", source="given"))
        found.result, found.parsed = result, outcome
        found.tried.append((FeedLink(result.final_url, outcome.format or "feed", source="given"), "feed"))
        return found
    if not looks_like_html(result.body, result.headers.get("content-type")):
        found = Discovery(page_url=url)
        found.tried.append((FeedLink(url, "given", source="given"), f"parse: {outcome.reason}"))
        return found
    return await poller.discover_from(result)
