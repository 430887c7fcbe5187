"""Replay of WARC archives through the live pipeline's stages (parse -> canonicalise -> extract -> tag ->
publish), never touching the network.

What a replay does, in order (docs/replay.md is the user's version):

1. **Index.** Every WARC file is scanned once (:mod:`newswire.connectors.warc_reader`): feed documents
   are listed, article pages are indexed by canonical URL -> (file, offset), 3xx responses by canonical
   URL -> canonical ``Location``. No body is kept; pages are read again on demand.
   Feed or page: our own records say so (``WARC-Newswire-Kind``); foreign records are judged by
   content type and the document's start, and XML/JSON of unclear kind is tried with the feed parser.
2. **Select.** Feed documents by WARC-Date (``since <= date < until``) and by URL (``--feed``); pages
   that no selected feed entry links to ("feedless" pages) by their own WARC-Date, and none at all when
   ``--feed`` is given. A page linked from a selected feed entry is used whatever its own date.
3. **Feeds, in archive-time order** (WARC-Date, then position in the archive): parsed in the process
   pool, entries canonicalised; the first occurrence of an article id wins, later ones are duplicates.
   An entry whose page is in the archive (same canonical URL, directly or through archived redirects;
   when several responses exist, the earliest 2xx) is extracted from it, else published from the
   entry's own text (``text_source: "feed"``).
4. **Feedless pages**, in archive-time order, as articles with ``feed: null``.

``fetched_at`` comes from the WARC-Date of the record the text came from (the page, or the feed
document), so two replays of one archive publish identical messages (all fields but ``processed_at``).
The live state is read only with ``skip_published`` and never written: a replay is not a live run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from newswire import stopping
from newswire.config import Settings
from newswire.connectors.kafka import KafkaSettings, Outgoing, Publisher
from newswire.connectors.warc_reader import (
    ArchivedResponse,
    BodyReader,
    RecordRef,
    ScanStats,
    WarcReadError,
    classify,
    read_body,
    scan,
    warc_files,
)
from newswire.contract import DeadLetter, utc_iso, utc_now
from newswire.pipeline import (
    Candidate,
    Outcome,
    Processor,
    RunSummary,
    _dead_letter_out,
    all_topics,
    entry_candidates,
)
from newswire.pool import extraction_pool
from newswire.processors.canonical import InvalidURL, article_id, canonical_url
from newswire.processors.feeds import FeedParseError, parse_feed
from newswire.processors.tagging import Tagger, load_taxonomy
from newswire.records import Entry, FeedSource, FetchResult, ParsedFeed

if TYPE_CHECKING:  # the store (and sqlalchemy) loads only for --skip-published
    from newswire.connectors.state import StateStore

log = logging.getLogger(__name__)

__all__ = ["ReplayError", "Selection", "parse_time", "replay"]

MAX_REDIRECTS = 5
# Candidates go to the Processor in chunks, two chunks in flight: the pool stays busy while the other
# chunk's tail is extracted or its batch published, and at most 2 chunks of page bodies are in memory.
IN_FLIGHT = 2
PARSE_AHEAD = 4  # feed documents in flight per extraction worker

# stage, done, total (None while unknown)
Progress = Callable[[str, int, int | None], None]


class ReplayError(ValueError):
    """A bad replay request (paths, times); the message is one line."""


@dataclass(frozen=True)
class Selection:
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    feeds: tuple[str, ...] = ()  # feed URLs (compared canonicalised)

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ReplayError(f"--since {utc_iso(self.since)} is not before --until {utc_iso(self.until)}")

    def in_window(self, moment: datetime) -> bool:
        return (self.since is None or moment >= self.since) and (self.until is None or moment < self.until)


def parse_time(text: str) -> datetime:
    """``2021-09-30``, ``2021-09-30T12:00``, ``2021-09-30T12:00:00+02:00`` or ``...Z``; no offset = UTC."""
    value = text.strip()
    if value.endswith("z"):  # ISO 8601 allows the lower case; Python's parser does not
        value = value[:-1] + "Z"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ReplayError(f"{text!r} is not an ISO 8601 date or time (e.g. 2021-09-30 or 2021-09-30T12:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is a moment of year 0 in UTC
        raise ReplayError(f"{text!r} is out of range: in UTC it falls outside the years 1 to 9999") from None


def _canonical_or_raw(url: str) -> str:
    try:
        canonical: str = canonical_url(url)
    except InvalidURL:
        return url.strip()
    return canonical


# -- the index ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedDoc:
    uri: str
    date: datetime
    seq: int  # position in the archive (files in path order, records in file order)
    content_type: str | None
    ref: RecordRef
    known: bool  # labelled or typed as a feed; False: only sniffed maybe-feed (failures are quiet)
    digest: str | None = None  # WARC-Payload-Digest

    @property
    def order(self) -> tuple[datetime, int]:
        return (self.date, self.seq)


@dataclass(frozen=True)
class PageRec:
    uri: str
    date: datetime
    seq: int
    content_type: str | None
    ref: RecordRef

    @property
    def order(self) -> tuple[datetime, int]:
        return (self.date, self.seq)


@dataclass
class ArchiveIndex:
    feeds: list[FeedDoc] = field(default_factory=list)
    pages: dict[str, PageRec] = field(default_factory=dict)  # canonical URL -> earliest 2xx page
    redirects: dict[str, tuple[tuple[datetime, int], str]] = field(default_factory=dict)
    duplicate_pages: int = 0  # later responses for a URL already indexed
    skipped: int = 0  # responses neither feed nor page (images, scripts, errors...)

    def add(self, item: ArchivedResponse, seq: int) -> None:
        kind = classify(item.kind, item.content_type, item.head)
        if kind is None:
            self.skipped += 1
            return
        if kind in ("feed", "maybe-feed"):
            if 200 <= item.status < 300:
                self.feeds.append(
                    FeedDoc(item.uri, item.date, seq, item.content_type, item.ref, kind == "feed", item.digest)
                )
            else:
                self.skipped += 1
            return
        try:
            url = canonical_url(item.uri)
        except InvalidURL:
            self.skipped += 1
            return
        order = (item.date, seq)
        if 300 <= item.status < 400 and item.headers.get("location"):
            try:
                target = canonical_url(item.headers["location"], base=item.uri)
            except InvalidURL:
                self.skipped += 1
                return
            known = self.redirects.get(url)
            if known is None or order < known[0]:
                self.redirects[url] = (order, target)
            return
        if not 200 <= item.status < 300:
            self.skipped += 1
            return
        page = PageRec(item.uri, item.date, seq, item.content_type, item.ref)
        known_page = self.pages.get(url)
        if known_page is None or order < known_page.order:
            if known_page is not None:
                self.duplicate_pages += 1
            self.pages[url] = page
        else:
            self.duplicate_pages += 1

    def resolve(self, url: str) -> str:
        """The URL an archived redirect chain starting at ``url`` ends at (``url`` itself when none)."""
        for _ in range(MAX_REDIRECTS):
            if url in self.pages or url not in self.redirects:
                return url
            url = self.redirects[url][1]
        return url

    def page_for(self, url: str) -> PageRec | None:
        return self.pages.get(self.resolve(url))


def build_index(files: Sequence[Path], stats: ScanStats, on_record: Callable[[int], None] | None = None) -> ArchiveIndex:
    index = ArchiveIndex()
    seq = 0
    for path in files:
        before = stats.records
        for item in scan(path, stats):
            index.add(item, seq)
            seq += 1
            if on_record is not None and seq % 256 == 0:
                on_record(stats.records)
        log.info("warc scanned file=%s records=%d", path, stats.records - before)
    if on_record is not None:
        on_record(stats.records)
    return index


# -- feed parsing in the pool -------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedFailure:
    reason: str
    detail: str


@dataclass(frozen=True)
class ParsedDoc:
    """A parsed feed document, already canonicalised into candidates (in the worker, off the main process)."""

    entries: int
    candidates: list[Candidate]
    rejected: list[tuple[Entry, str]]


def parse_archived_feed(ref: RecordRef, uri: str, content_type: str | None, fetched_at: datetime) -> ParsedDoc | FeedFailure:
    """Worker side: read one feed record, parse it, canonicalise its entries (runs in the process pool)."""
    try:
        body = read_body(ref)
    except WarcReadError as exc:
        return FeedFailure("archive-read", str(exc))
    try:
        parsed: ParsedFeed = parse_feed(body, uri, content_type)
    except FeedParseError as exc:
        return FeedFailure(exc.reason, str(exc))
    if parsed.bozo and not parsed.entries:
        # as in the live poll: ill-formed with nothing salvageable is a broken feed, not an empty one
        return FeedFailure("ill-formed", parsed.bozo)
    candidates, rejected = entry_candidates(parsed, FeedSource(url=uri), fetched_at)
    return ParsedDoc(len(parsed.entries), candidates, rejected)


def _warm_worker() -> None:
    """Nothing: unpickling it imports this module (parser, extractor) in the worker ahead of real work."""


def _start_workers(executor: ProcessPoolExecutor, workers: int) -> None:
    for _ in range(workers):
        executor.submit(_warm_worker)


async def _parsed_in_order(
    docs: Sequence[FeedDoc], executor: object, ahead: int
) -> AsyncIterator[tuple[FeedDoc, ParsedDoc | FeedFailure]]:
    """Feed documents parsed in the pool, yielded in archive-time order, ``ahead`` in flight."""
    loop = asyncio.get_running_loop()
    pending: deque[tuple[FeedDoc, asyncio.Future[ParsedDoc | FeedFailure]]] = deque()
    remaining = iter(docs)

    def submit() -> None:
        doc = next(remaining, None)
        if doc is not None:
            future = loop.run_in_executor(executor, parse_archived_feed, doc.ref, doc.uri, doc.content_type, doc.date)  # type: ignore[arg-type]
            pending.append((doc, future))

    for _ in range(ahead):
        submit()
    try:
        while pending:
            doc, future = pending.popleft()
            try:
                result = await future
            except Exception as exc:  # a crashed parser must not end the replay
                log.exception("feed parse crashed uri=%s", doc.uri)
                result = FeedFailure("parser-error", f"{type(exc).__name__}: {exc}")
            submit()
            yield doc, result
    finally:  # stopped early (Ctrl-C): the parses in flight are not waited for, nor their errors reported
        for _, future in pending:
            future.cancel()


# -- pages from the archive ---------------------------------------------------------------------------


class ArchivePages:
    """The PageSource of a replay: the archived page of a candidate's canonical URL, read on demand."""

    def __init__(self, index: ArchiveIndex, reader: BodyReader) -> None:
        self._index = index
        self._reader = reader
        self.read_errors = 0

    async def get(self, candidate: Candidate) -> FetchResult | None:
        page = self._index.page_for(candidate.url)
        if page is None:
            return None
        headers = {"content-type": page.content_type} if page.content_type else {}
        try:
            body = self._reader.read(page.ref)
        except WarcReadError as exc:
            self.read_errors += 1
            log.warning("archived page unreadable url=%s: %s", page.uri, exc)
            return FetchResult(page.uri, page.uri, None, headers, b"", page.date, error="archive-read", detail=str(exc))
        return FetchResult(candidate.url, page.uri, 200, headers, body, page.date)


# -- the replay ---------------------------------------------------------------------------------------


def replay(
    settings: Settings,
    paths: Sequence[Path],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    feeds: Sequence[str] = (),
    skip_published: bool = False,
    on_progress: Progress | None = None,
) -> RunSummary:
    """Replay WARC files or directories of them; returns the run summary (``summary.line(replay=True)``).

    Raises ReplayError / WarcReadError (bad request), BrokerUnavailable, TaxonomyError, StateError.
    """
    selection = Selection(since, until, tuple(_canonical_or_raw(f) for f in feeds))
    return stopping.run(_replay(settings, list(paths), selection, skip_published, on_progress))


@dataclass
class _Run:
    settings: Settings
    summary: RunSummary
    processor: Processor
    pages: ArchivePages
    store: StateStore | None
    seen: set[str] = field(default_factory=set)
    letters: list[Outgoing] = field(default_factory=list)
    running: deque[asyncio.Task[None]] = field(default_factory=deque)
    lettered: set[tuple[str, str, str]] = field(default_factory=set)

    def take(self, candidate: Candidate) -> bool:
        """First occurrence of an id wins."""
        if candidate.id in self.seen:
            self.summary.duplicates += 1
            log.debug(
                "entry duplicate id=%s url=%s feed=%s", candidate.id, candidate.url,
                candidate.feed.url if candidate.feed else None,
            )
            return False
        self.seen.add(candidate.id)
        return True

    def dead_letter(self, stage: str, reason: str, url: str | None, feed_url: str | None, detail: str) -> None:
        key = (reason, url or "", feed_url or "")
        if key in self.lettered:  # the same broken entry in many snapshots: one dead letter
            return
        self.lettered.add(key)
        letter = DeadLetter(stage=stage, reason=reason, url=url, feed_url=feed_url, at=utc_iso(utc_now()), detail=detail)  # type: ignore[arg-type]
        self.letters.append(_dead_letter_out(self.settings.topic_prefix, letter))

    async def submit(self, candidates: list[Candidate]) -> None:
        """Process a chunk in the background, waiting first while IN_FLIGHT chunks are running."""
        if not candidates:
            return
        while len(self.running) >= IN_FLIGHT:
            await self.running.popleft()
        self.running.append(asyncio.create_task(self.process(candidates)))

    async def drain(self) -> None:
        while self.running:
            await self.running.popleft()

    async def process(self, candidates: list[Candidate]) -> None:
        if not candidates:
            return
        if self.store is not None:
            already = self.store.published_among(c.id for c in candidates)
            self.summary.duplicates += len(already)
            if already:
                log.info("entries skipped already_published=%d (--skip-published)", len(already))
            for candidate in candidates:
                if candidate.id in already:
                    log.debug("entry already-published id=%s url=%s", candidate.id, candidate.url)
            candidates = [c for c in candidates if c.id not in already]
        outcomes = await self.processor.process(candidates, self.pages)
        self.tally(outcomes)

    def tally(self, outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:
            # "not in the archive" is the normal case of a feed-only archive, not a failure
            self.summary.count(outcome, not_failures=("not-archived",))


async def _replay(
    settings: Settings,
    paths: list[Path],
    selection: Selection,
    skip_published: bool,
    on_progress: Progress | None,
) -> RunSummary:
    started = time.monotonic()
    summary = RunSummary()
    files = warc_files(paths)
    taxonomy = load_taxonomy(settings.taxonomy)
    tagger = Tagger(taxonomy)
    with ExitStack() as stack:
        store = None
        if skip_published:
            from newswire.connectors.state import StateStore, missing_sqlite_file

            missing = missing_sqlite_file(settings.state_dir, settings.state_url)
            if missing is not None:  # opening it would create an empty store, which skips nothing
                where = f"in {settings.state_dir}" if settings.state_url is None else f"at {missing}"
                raise ReplayError(f"--skip-published: no state store {where} (pass --state-dir or --state-url)")

            store = stack.enter_context(StateStore.open(settings.state_dir, settings.state_url))
        # The broker is checked before a long scan, so a typo in --bootstrap-servers fails at once.
        publisher = stack.enter_context(Publisher(_kafka_settings(settings)))
        executor = stack.enter_context(extraction_pool(settings.extract_workers))
        workers = settings.extract_workers or os.cpu_count() or 1
        # The worker processes start while topics are created and the archive is scanned: the first
        # spawn waits for the forkserver to import the extractor and load the language model (~1 s),
        # so it runs in a thread of its own instead of holding up the scan.
        warming = asyncio.ensure_future(asyncio.to_thread(_start_workers, executor, workers))
        await asyncio.to_thread(publisher.ensure_topics, all_topics(settings.topic_prefix, taxonomy))

        stats = ScanStats()
        report = (lambda n: on_progress("records", n, None)) if on_progress is not None else None
        index = await asyncio.to_thread(build_index, files, stats, report)
        await warming
        summary.records_read = stats.records
        summary.malformed_records = stats.malformed
        log.info(
            "replay index seconds=%.1f files=%d records=%d feeds=%d pages=%d redirects=%d skipped=%d malformed=%d",
            time.monotonic() - started, stats.files, stats.records, len(index.feeds), len(index.pages), len(index.redirects),
            index.skipped, stats.malformed,
        )

        archived = {_canonical_or_raw(d.uri) for d in index.feeds}
        for feed in selection.feeds:
            if feed not in archived:  # a typo would otherwise replay nothing without a word
                log.warning("--feed %s: no feed document in the archive has this URL", feed)
        docs = _changed(sorted((d for d in index.feeds if _selected_feed(d, selection)), key=lambda d: d.order))
        summary.feeds_unchanged = sum(1 for d in index.feeds if _selected_feed(d, selection)) - len(docs)
        reader = stack.enter_context(BodyReader())
        done = 0

        def progressed(step: int) -> None:
            nonlocal done
            done += step
            if on_progress is not None:
                on_progress("articles", done, None)

        processor = Processor(
            settings=settings,
            tagger=tagger,
            taxonomy=taxonomy,
            publisher=publisher,
            executor=executor,
            replayed=True,
            on_progress=progressed,
        )
        run = _Run(settings, summary, processor, ArchivePages(index, reader), store)

        # feeds, in archive-time order; chunks of candidates are processed while the next are built
        size = max(settings.publish_batch, 1)
        claimed: set[str] = set()  # canonical page URLs some selected entry links to
        chunk: list[Candidate] = []

        async def offer(candidate: Candidate) -> None:
            """Queue a candidate not seen before in this replay; a full chunk goes to processing."""
            nonlocal chunk
            if run.take(candidate):
                chunk.append(candidate)
            if len(chunk) >= size:
                await run.submit(chunk)
                chunk = []

        async for doc, result in _parsed_in_order(docs, executor, max(workers, 1) * PARSE_AHEAD):
            if isinstance(result, FeedFailure):
                if doc.known:
                    summary.feeds_failed += 1
                    log.info("archived feed not parsed uri=%s reason=%s", doc.uri, result.reason)
                    run.dead_letter("parse", result.reason, doc.uri, doc.uri, result.detail)
                continue
            summary.feeds_polled += 1
            summary.entries_seen += result.entries
            for entry, reason in result.rejected:
                run.dead_letter("parse", reason.split(":")[0], entry.link, doc.uri, _rejected_detail(entry, reason))
            for candidate in result.candidates:
                claimed.add(index.resolve(candidate.url))
                await offer(candidate)
        await run.submit(chunk)
        await run.drain()
        log.info("replay feeds done docs=%d seconds=%.1f", len(docs), time.monotonic() - started)

        # pages no selected feed entry links to, as feedless articles
        if not selection.feeds:
            chunk = []
            for url, page in sorted(index.pages.items(), key=lambda item: item[1].order):
                if url in claimed or not selection.in_window(page.date):
                    continue
                await offer(Candidate(article_id(url), url, page.uri, None, None, page.date))
            await run.submit(chunk)
            await run.drain()

        if run.letters:
            for sent in await asyncio.to_thread(publisher.send_batch, run.letters):
                if sent.ok:
                    summary.dead_letters += 1
                else:
                    summary.publish_failures += 1
    summary.elapsed = time.monotonic() - started
    return summary


def _selected_feed(doc: FeedDoc, selection: Selection) -> bool:
    if not selection.in_window(doc.date):
        return False
    return not selection.feeds or _canonical_or_raw(doc.uri) in selection.feeds


def _changed(docs: list[FeedDoc]) -> list[FeedDoc]:
    """Drops a document identical (same URL, same payload digest) to an earlier one of the same feed: a
    live archive holds one per poll, and every entry of a copy would only be a duplicate."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for doc in docs:
        if doc.digest is not None:
            key = (_canonical_or_raw(doc.uri), doc.digest)
            if key in seen:
                continue
            seen.add(key)
        kept.append(doc)
    return kept


def _rejected_detail(entry: Entry, reason: str) -> str:
    return f"entry {entry.guid or entry.title!r}: {reason}"


def _kafka_settings(settings: Settings) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=settings.bootstrap_servers,
        topic_prefix=settings.topic_prefix,
        client_config=dict(settings.kafka_options),
    )

