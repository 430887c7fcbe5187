"""The stages in order: poll -> parse -> canonicalise + dedup -> page -> extract -> tag -> publish -> commit.

One code path for the live run and the replay: they differ only in where feed documents and pages come
from (``PageSource``) and in how "already published" is decided. Everything from parsing on is shared.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Literal, Protocol

from newswire import __version__
from newswire.config import Settings
from newswire.connectors.kafka import BrokerUnavailable, Outgoing, Publisher, SendResult
from newswire.contract import ArticleMessage, DeadLetter, Stage, topic_for, utc_iso, utc_now
from newswire.metrics import metrics
from newswire.processors.canonical import InvalidURL, article_id, canonical_url
from newswire.processors.extract_task import EXTRACTOR, extract_page
from newswire.processors.message import ArticleInput, build_message
from newswire.processors.schedule import PollObservation, ScheduleSettings, ScheduleState, plan
from newswire.processors.tagging import Tagger, Taxonomy
from newswire.records import Entry, Extraction, FeedSource, FeedState, FetchResult, ParsedFeed

log = logging.getLogger(__name__)


# -- records of a run ---------------------------------------------------------------------------------


@dataclass
class RunSummary:
    feeds_polled: int = 0
    feeds_not_modified: int = 0
    feeds_unchanged: int = 0  # 200 with a body identical to the last one: not parsed again
    feeds_failed: int = 0
    feeds_failing: int = 0  # listed feeds whose last poll failed (polled in this run or not)
    feeds_parked: int = 0  # listed feeds parked after repeated failures
    feeds_waiting: int = 0  # listed feeds a server asked (Retry-After) not to poll yet
    feeds_leased: int = 0  # listed feeds due but leased by another run (concurrent, or killed not long ago)
    entries_seen: int = 0
    published: int = 0
    from_page: int = 0
    from_feed: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    page_failures: int = 0
    publish_failures: int = 0
    records_read: int = 0  # replay only
    malformed_records: int = 0  # replay only: damaged WARC records/regions skipped
    topics: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0

    def add(self, part: RunSummary) -> None:
        """Add one batch's summary to a run's. Health counts describe the whole store: the latest wins."""
        for item in fields(RunSummary):
            value = getattr(part, item.name)
            if item.name == "topics":
                for slug, count in value.items():
                    self.topics[slug] = self.topics.get(slug, 0) + count
            elif item.name in ("feeds_failing", "feeds_parked", "feeds_waiting", "feeds_leased"):
                setattr(self, item.name, value)
            else:
                setattr(self, item.name, getattr(self, item.name) + value)

    def count(self, outcome: Outcome, *, not_failures: tuple[str, ...] = ()) -> None:
        """Add one article's outcome; ``page_error`` reasons in ``not_failures`` are not page failures
        (replay: a feed-only archive has no pages, which is normal)."""
        if outcome.status == "failed":
            self.publish_failures += 1
        elif outcome.status == "dead-letter":
            self.dead_letters += 1
        else:
            self.published += 1
            if outcome.text_source == "page":
                self.from_page += 1
            else:
                self.from_feed += 1
            if outcome.page_error is not None and outcome.page_error not in not_failures:
                self.page_failures += 1
            assert outcome.message is not None
            for topic in outcome.message.topics:
                self.topics[topic.slug] = self.topics.get(topic.slug, 0) + 1

    @property
    def completed(self) -> bool:
        """True when every entry ended published, skipped or dead-lettered (nothing left pending)."""
        return self.publish_failures == 0

    def line(self, *, replay: bool = False) -> str:
        head = (
            f"replay: {self.records_read} records read"
            if replay
            else f"run: {self.feeds_polled} feeds polled ({self.feeds_not_modified} not modified, "
            f"{self.feeds_unchanged} unchanged, {self.feeds_failed} failed); {self.feeds_failing} feeds failing, "
            f"{self.feeds_parked} parked, {self.feeds_waiting} waiting (Retry-After)"
            + (f", {self.feeds_leased} leased by another run" if self.feeds_leased else "")
        )
        parts = [
            head,
            f"{self.published} articles published ({self.from_page} from pages, {self.from_feed} from feeds)",
            f"{self.duplicates} duplicates skipped",
            f"{self.page_failures} page failures",
            f"{self.dead_letters} dead letters",
        ]
        if replay:
            parts.append(f"{self.malformed_records} malformed records skipped")
        if self.publish_failures:
            # a replay writes no state: nothing retries what it could not publish but another replay
            retry = "replay again to publish them" if replay else "retried by a run after the poll floor (or --all)"
            parts.append(f"{self.publish_failures} NOT published (broker), {retry}")
        line = ", ".join(parts) + f", {self.elapsed:.1f} s"
        if not replay and (self.feeds_failed or self.feeds_failing):
            line += " (why they fail: newswire feeds status --failing)"
        return line


@dataclass(frozen=True)
class Candidate:
    """A new entry (or an archived page no feed links to) that should become one article."""

    id: str
    url: str
    original_url: str
    feed: FeedSource | None
    entry: Entry | None
    fetched_at: datetime  # when the feed (or the page, for feedless pages) was fetched


@dataclass(frozen=True)
class Outcome:
    candidate: Candidate
    status: str  # "published" | "dead-letter" | "failed" (not acknowledged: retried next run)
    message: ArticleMessage | None = None
    text_source: str | None = None
    page_error: str | None = None


class PageSource(Protocol):
    """Where article pages come from: the network (live) or a WARC archive (replay)."""

    async def get(self, candidate: Candidate) -> FetchResult | None: ...


# -- shared resources ---------------------------------------------------------------------------------


@dataclass
class Processor:
    """Turns candidates into published articles: page -> extract -> tag -> message -> publish."""

    settings: Settings
    tagger: Tagger
    taxonomy: Taxonomy
    publisher: Publisher
    executor: Executor
    replayed: bool = False
    on_progress: Callable[[int], None] | None = None
    # called with each batch's outcomes as soon as the broker answered, so acknowledged articles are
    # marked done at once and a later failure in the same run cannot make them publish twice
    on_batch: Callable[[list[Outcome]], None] | None = None

    async def process(self, candidates: Sequence[Candidate], pages: PageSource) -> list[Outcome]:
        outcomes: list[Outcome] = []
        window = max(self.settings.publish_batch, 1) * 4
        for start in range(0, len(candidates), window):
            chunk = candidates[start : start + window]
            inputs: list[tuple[ArticleInput, str | None]] = []
            pending = [asyncio.ensure_future(self._prepare(c, pages)) for c in chunk]
            try:
                for future in asyncio.as_completed(pending):
                    inputs.append(await future)
                    if len(inputs) >= self.settings.publish_batch:
                        outcomes.extend(await self._publish_and_commit(inputs))
                        inputs = []
            finally:  # cancelled (Ctrl-C): the entries still being prepared stop with it
                for future in pending:
                    future.cancel()
            if inputs:
                outcomes.extend(await self._publish_and_commit(inputs))
        return outcomes

    async def _publish_and_commit(self, inputs: list[tuple[ArticleInput, str | None]]) -> list[Outcome]:
        outcomes = await self._publish(inputs)
        if self.on_batch is not None:
            self.on_batch(outcomes)
        return outcomes

    async def send(self, items: list[Outgoing]) -> list[SendResult]:
        """Per-item results; a broker that is gone fails the items instead of ending the run."""
        try:
            with metrics().timed(metrics().publish_seconds):
                results: list[SendResult] = await asyncio.to_thread(self.publisher.send_batch, items)
        except BrokerUnavailable as exc:
            log.warning("publish failed: broker unavailable: %s", exc)
            return [SendResult(item=i, ok=False, error="unreachable") for i in items]
        count_acknowledged(self.settings.topic_prefix, results)
        return results

    async def _prepare(self, candidate: Candidate, pages: PageSource) -> tuple[ArticleInput, str | None]:
        page_error: str | None = None
        extraction: Extraction | None = None
        fetched_at = candidate.fetched_at
        page = await pages.get(candidate) if self.settings.fetch_pages or self.replayed else None
        if page is None:
            page_error = None if candidate.entry is None else "not-archived" if self.replayed else None
        elif not page.ok:
            page_error = page.error or f"http-{page.status}"
            log.debug(
                "page unusable url=%s final_url=%s status=%s reason=%s detail=%s",
                candidate.url, page.final_url, page.status, page_error, page.detail,
            )
        else:
            loop = asyncio.get_running_loop()
            try:
                with metrics().timed(metrics().extract_seconds):
                    extraction = await loop.run_in_executor(
                        self.executor, extract_page, page.body, page.final_url, page.headers.get("content-type")
                    )
            except Exception:  # a crash inside the extractor must not end the entry
                log.exception("extract failed url=%s", page.final_url)
                extraction = None
            if extraction is None:
                page_error = "no-text"
                log.debug("page gave no article text url=%s final_url=%s", candidate.url, page.final_url)
            else:
                fetched_at = page.fetched_at
                log.debug(
                    "page extracted url=%s final_url=%s chars=%d language=%s",
                    candidate.url, page.final_url, len(extraction.text), extraction.language,
                )
        if self.on_progress is not None:
            self.on_progress(1)
        item = ArticleInput(
            id=candidate.id,
            url=candidate.url,
            original_url=candidate.original_url,
            feed=candidate.feed,
            entry=candidate.entry,
            extraction=extraction,
            fetched_at=fetched_at,
        )
        return item, page_error

    def _message(self, item: ArticleInput, now: datetime) -> ArticleMessage:
        """The article's tags and message; what it raises is this article's defect alone."""
        tags = self.tagger.tag(item.title, item.text, lead=item.lead)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "article tagged id=%s url=%s text_source=%s language=%s topics=%s",
                item.id, item.url, item.text_source, item.language,
                ",".join(f"{t.slug}:{t.score:.2f}" for t in tags) or "-",
            )
        return build_message(
            item,
            tags,
            processed_at=now,
            replayed=self.replayed,
            pipeline_version=__version__,
            taxonomy_version=self.tagger.version,
            extractor=EXTRACTOR,
        )

    def _letter(
        self, item: ArticleInput, candidate: Candidate, now: datetime, stage: Stage, reason: str, detail: str
    ) -> Outgoing:
        """The dead letter of an article that cannot be published."""
        letter = DeadLetter(
            stage=stage,
            reason=reason,
            url=item.url,
            feed_url=item.feed.url if item.feed else None,
            at=utc_iso(now),
            detail=detail,
        )
        return _dead_letter_out(self.settings.topic_prefix, letter, ref=("dl", candidate))

    async def _publish(self, inputs: list[tuple[ArticleInput, str | None]]) -> list[Outcome]:
        now = utc_now()
        outgoing: list[Outgoing] = []
        outcomes: list[Outcome] = []
        prepared: list[tuple[Candidate, ArticleMessage, str | None]] = []
        for item, page_error in inputs:
            candidate = _candidate_of(item)
            if not item.text.strip():
                log.info(
                    "article dead-lettered url=%s reason=no-text page=%s feed=%s",
                    item.url, page_error or "none", item.feed.url if item.feed else None,
                )
                detail = f"page: {page_error or 'none'}; the feed entry carries no text either"
                outgoing.append(self._letter(item, candidate, now, "extract", "no-text", detail))
                continue
            if page_error is not None:
                # the page could not be used: the article is published with the feed entry's own text
                # (the same in a replay of an archive without pages, where that is normal: debug only)
                log.log(
                    logging.DEBUG if page_error == "not-archived" else logging.INFO,
                    "page failed url=%s reason=%s text_source=feed feed=%s",
                    item.url, page_error, item.feed.url if item.feed else None,
                )
            try:
                message = self._message(item, now)
                # serialised here: a message that cannot be is this article's defect
                messages_out = article_outgoing(self.settings.topic_prefix, message, ref=("msg", candidate))
            except Exception as exc:  # one article's defect must not stop the run
                # A bug, or input no stage foresaw: that article goes to the dead letters with its
                # traceback in the log, the run goes on (it failed as a whole, and every run after it).
                log.exception("article could not be built url=%s", item.url)
                detail = f"{type(exc).__name__}: {str(exc)[:300]} (traceback in the log)"
                outgoing.append(self._letter(item, candidate, now, "tag", "internal-error", detail))
                continue
            prepared.append((candidate, message, page_error))
            outgoing.extend(messages_out)
        results = await self.send(outgoing)
        by_candidate: dict[str, list[SendResult]] = {}
        for result in results:
            kind, candidate = _ref(result)
            by_candidate.setdefault(f"{kind}:{candidate.id}", []).append(result)
        for result in results:
            kind, candidate = _ref(result)
            if kind == "dl":
                outcomes.append(Outcome(candidate, "dead-letter" if result.ok else "failed"))
        too_large: list[Outgoing] = []
        not_sent: dict[str, int] = {}  # error -> articles
        failed = 0
        for candidate, message, page_error in prepared:
            sent = by_candidate.get(f"msg:{candidate.id}", [])
            if sent and all(r.ok for r in sent):
                outcomes.append(Outcome(candidate, "published", message, message.text_source, page_error))
            elif any(r.error == "too-large" for r in sent):
                letter = DeadLetter(
                    stage="publish",
                    reason="too-large",
                    url=message.url,
                    feed_url=message.feed.url if message.feed else None,
                    at=utc_iso(now),
                    detail=f"message of {len(message.to_json())} bytes exceeds the broker's limit",
                )
                too_large.append(_dead_letter_out(self.settings.topic_prefix, letter, ref=("dl", candidate)))
            else:
                errors = sorted({r.error or "?" for r in sent if not r.ok})
                # one line per article in the log file; one per batch on the terminal (below)
                log.info("publish failed id=%s url=%s errors=%s", candidate.id, candidate.url, errors)
                for error in errors:
                    not_sent[error] = not_sent.get(error, 0) + 1
                failed += 1
                outcomes.append(Outcome(candidate, "failed", message, message.text_source, page_error))
        if failed:
            log.warning(
                "publish failed for %d articles of this batch (%s)",
                failed,
                ", ".join(f"{error}: {count}" for error, count in sorted(not_sent.items())),
            )
        if too_large:
            for result in await self.send(too_large):
                _, candidate = _ref(result)
                outcomes.append(Outcome(candidate, "dead-letter" if result.ok else "failed"))
        return outcomes


def count_acknowledged(prefix: str, results: Iterable[SendResult]) -> None:
    """Metrics of what reached the broker: articles on ``{prefix}.articles``, dead letters by stage."""
    articles, letters = f"{prefix}.articles", f"{prefix}.deadletter"
    for result in results:
        if not result.ok:
            continue
        if result.item.topic == articles:
            metrics().published.inc()
        elif result.item.topic == letters:
            try:
                stage = str(json.loads(result.item.value).get("stage") or "unknown")
            except ValueError:
                stage = "unknown"
            metrics().dead_letter(stage)


def _ref(result: SendResult) -> tuple[str, Candidate]:
    """What an outgoing message was sent for: ("msg" | "dl", its candidate)."""
    ref: tuple[str, Candidate] = result.item.ref  # type: ignore[assignment]  # opaque to the publisher
    return ref


def _candidate_of(item: ArticleInput) -> Candidate:
    return Candidate(item.id, item.url, item.original_url, item.feed, item.entry, item.fetched_at)


def article_outgoing(prefix: str, message: ArticleMessage, *, ref: object = None) -> list[Outgoing]:
    """The article on ``{prefix}.articles`` and, unchanged, on each of its topics' streams."""
    value = message.to_json()
    key = message.id.encode()
    headers = message.headers()
    topics = [f"{prefix}.articles"] + [topic_for(prefix, t.slug) for t in message.topics]
    return [Outgoing(topic=t, key=key, value=value, headers=headers, ref=ref) for t in topics]


def _dead_letter_out(prefix: str, letter: DeadLetter, *, ref: object = None) -> Outgoing:
    key = (letter.url or letter.feed_url or "").encode() or None
    return Outgoing(topic=f"{prefix}.deadletter", key=key, value=letter.to_json(), headers=letter.headers(), ref=ref)


def all_topics(prefix: str, taxonomy: Taxonomy) -> list[str]:
    return [f"{prefix}.articles", f"{prefix}.deadletter"] + [topic_for(prefix, s) for s in taxonomy.slugs]


def entry_candidates(
    parsed: ParsedFeed, feed: FeedSource, fetched_at: datetime
) -> tuple[list[Candidate], list[tuple[Entry, str]]]:
    """Canonicalise a feed's entries. Returns candidates and the entries that cannot have an id."""
    feed_ref = FeedSource(url=feed.url, title=parsed.title or feed.title)
    candidates: list[Candidate] = []
    rejected: list[tuple[Entry, str]] = []
    for entry in parsed.entries:
        link = entry.link or (entry.guid if entry.guid and entry.guid.startswith(("http://", "https://")) else None)
        if not link:
            rejected.append((entry, "no-link"))
            continue
        try:
            url = canonical_url(link, base=feed.url)
        except InvalidURL as exc:
            rejected.append((entry, f"bad-link: {exc}"))
            continue
        candidates.append(Candidate(article_id(url), url, link, feed_ref, entry, fetched_at))
    return candidates, rejected


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# -- the live run -------------------------------------------------------------------------------------


@dataclass
class FeedPoll:
    feed: FeedSource
    previous: FeedState | None
    result: FetchResult
    parsed: ParsedFeed | None = None
    error: str | None = None  # fetch or parse failure: a short reason code (timeout, http-500, ill-formed...)
    stage: str = "fetch"
    detail: str | None = None  # the human sentence behind the reason
    unchanged: bool = False
    fetched_url: str | None = None  # the URL polled: the listed one or the feed discovered on it
    discovered: str | None = None  # the feed found by discovery on the listed page (kept in state)
    body_hash: str | None = None  # of the feed body (the body itself is dropped after parsing)


class LivePages:
    """Pages from the network; every response archived and logged."""

    def __init__(self, fetch: Callable[..., object], archive_write: Callable[[FetchResult, Literal["feed", "page"]], None] | None,
                 fetch_log: list[tuple[datetime, str, str, int | None, str | None, int]]) -> None:
        self._fetch = fetch
        self._archive = archive_write
        self._log = fetch_log

    async def get(self, candidate: Candidate) -> FetchResult | None:
        result: FetchResult = await self._fetch(candidate.url, kind="page")  # type: ignore[misc]
        self._log.append((result.fetched_at, "page", candidate.url, result.status, result.error, len(result.body)))
        if self._archive is not None and result.ok:
            self._archive(result, "page")
        return result


def _health_error(poll: FeedPoll) -> str | None:
    if poll.error is None:
        return None
    text = f"{poll.stage}: {poll.error}" + (f" ({poll.detail})" if poll.detail else "")
    return text[:500]


def due_feeds(
    feeds: Iterable[FeedSource], states: Mapping[str, FeedState], now: datetime, *, poll_all: bool = False
) -> list[FeedSource]:
    """The feeds to poll now, each URL once: never polled, or due; with ``poll_all`` every feed, parked
    ones included. A feed whose server asked to wait (Retry-After) is left alone even with ``poll_all``."""
    due: list[FeedSource] = []
    seen: set[str] = set()
    for feed in feeds:
        if feed.url in seen:
            continue
        seen.add(feed.url)
        state = states.get(feed.url)
        if state is None:
            due.append(feed)
        elif state.waiting(now):
            continue
        elif poll_all or state.is_due(now):
            due.append(feed)
    return due


def observation(poll: FeedPoll, *, new_entries: int) -> PollObservation:
    """What the schedule needs to know about one poll."""
    parsed = poll.parsed
    return PollObservation(
        at=poll.result.fetched_at,
        failed=poll.error is not None,
        status=poll.result.status,
        headers=poll.result.headers,
        parsed=parsed is not None,
        new_entries=new_entries,
        document_entries=len(parsed.entries) if parsed else 0,
        entry_dates=tuple(e.published for e in parsed.entries if e.published) if parsed else (),
        ttl_seconds=parsed.ttl_seconds if parsed else None,
    )


def feed_state_after(
    poll: FeedPoll,
    *,
    now: datetime,
    schedule: ScheduleSettings,
    entries_seen: int,
    page_failures: int,
    all_done: bool,
    new_entries: int = 0,
    last_page_error: str | None = None,
    draw: float | None = None,
) -> FeedState:
    """The feed's new state: health, the adaptive schedule (:mod:`newswire.processors.schedule`) and,
    when everything ended, the validators. Validators (ETag, Last-Modified, body hash) advance only when
    every entry of this response ended (published, duplicate or dead-lettered), so a crash or a broker
    outage makes the next poll fetch and process the same entries again."""
    prev = poll.previous or FeedState(url=poll.feed.url)
    result = poll.result
    failed = poll.error is not None
    planned = plan(
        ScheduleState(
            rate_count=prev.rate_count,
            rate_since=prev.rate_since,
            last_success_at=prev.last_success_at,
            consecutive_failures=prev.consecutive_failures,
            parked_since=prev.parked_since,
            ttl_seconds=prev.ttl_seconds,
        ),
        observation(poll, new_entries=new_entries),
        schedule,
        draw=random.random() if draw is None else draw,
    )
    polled_at = result.fetched_at
    state = replace(
        prev,
        title=(poll.parsed.title if poll.parsed and poll.parsed.title else prev.title or poll.feed.title),
        last_poll_at=polled_at,
        last_status=result.status,
        last_error=_health_error(poll),
        consecutive_failures=planned.consecutive_failures,
        entries_seen=prev.entries_seen + entries_seen,
        page_failures=prev.page_failures + page_failures,
        last_page_error=last_page_error or prev.last_page_error,
        next_poll_at=planned.next_poll_at,
        schedule_reason=planned.reason,
        rate_count=planned.rate_count,
        rate_since=planned.rate_since,
        ttl_seconds=planned.ttl_seconds,
        retry_after_until=planned.retry_after_until,
        parked_since=planned.parked_since,
        failing_since=(prev.failing_since or polled_at) if failed else None,
        discovered_url=poll.discovered,
    )
    if poll.discovered != prev.discovered_url:
        # another URL is polled from now on: the old one's validators mean nothing for it
        state = replace(state, etag=None, last_modified=None, body_hash=None)
    soon = now + schedule.floor
    if not failed and not all_done and not state.waiting(now):
        # entries the broker did not acknowledge: due again after the poll floor at the latest, so a run
        # then publishes them (not at the feed's next adaptive poll, up to a day away; nor every minute
        # while a message keeps failing, which would refetch the feed without validators at every tick).
        # Said so even when the plan was the floor anyway (a first poll): `feeds status` shows the backlog
        state = replace(state, next_poll_at=min(state.next_poll_at or soon, soon), schedule_reason="pending")
    if not failed:
        state = replace(state, last_success_at=polled_at)
        if all_done and result.ok:
            state = replace(
                state,
                etag=result.headers.get("etag"),
                last_modified=result.headers.get("last-modified"),
                body_hash=poll.body_hash,
            )
    return state
