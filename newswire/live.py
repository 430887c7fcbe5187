"""One live poll cycle: the feeds that are due (or all), every new entry, published and committed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta

from newswire import __version__
from newswire.config import Settings
from newswire.connectors.http import Fetcher, FetchSettings
from newswire.connectors.kafka import KafkaSettings, Outgoing, Publisher
from newswire.connectors.state import FeedState, PublishedRow, StateStore
from newswire.connectors.warc_writer import WarcArchive
from newswire.contract import DeadLetter, utc_iso, utc_now
from newswire.pipeline import (
    Candidate,
    FeedPoll,
    LivePages,
    Outcome,
    Processor,
    RunSummary,
    _dead_letter_out,
    all_topics,
    due_feeds,
    entry_candidates,
    extraction_pool,
    feed_state_after,
)
from newswire.polling import Poller, poll_feeds
from newswire.processors.schedule import ScheduleSettings
from newswire.processors.tagging import Tagger, load_taxonomy
from newswire.records import FeedSource

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = timedelta(minutes=15)


def fetch_settings(settings: Settings) -> FetchSettings:
    return FetchSettings(
        allow_hosts=settings.allow_hosts,
        user_agent=f"newswire/{__version__} (+{settings.user_agent_contact})",
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        total_timeout=settings.total_timeout,
        max_feed_bytes=settings.max_feed_bytes,
        max_page_bytes=settings.max_page_bytes,
        max_redirects=settings.max_redirects,
        concurrency=settings.concurrency,
        per_host=settings.per_host,
    )


def schedule_settings(settings: Settings, interval: timedelta = DEFAULT_INTERVAL) -> ScheduleSettings:
    """The adaptive schedule's knobs; ``interval`` (``--interval``) is the default for a new feed."""
    minute = timedelta(minutes=1)
    floor = settings.poll_floor * minute
    ceiling = settings.poll_ceiling * minute
    return ScheduleSettings(
        default_interval=min(max(interval, floor), ceiling),
        floor=floor,
        ceiling=ceiling,
        entries_per_poll=settings.entries_per_poll,
        rate_window=settings.rate_window * minute,
        jitter=settings.poll_jitter,
        backoff_base=settings.backoff_base * minute,
        backoff_max=settings.backoff_max * minute,
        park_after=settings.park_after,
        park_retry=settings.park_retry * minute,
        retry_after_max=settings.retry_after_max * minute,
    )


#: ``fetcher_factory(settings) -> Fetcher``: tests pass one with their own resolver and network backend.
FetcherFactory = Callable[[FetchSettings], Fetcher]


def kafka_settings(settings: Settings) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=settings.bootstrap_servers,
        topic_prefix=settings.topic_prefix,
        client_config=dict(settings.kafka_options),
    )


@dataclass
class _FeedTally:
    candidates: int = 0
    pending: int = 0  # candidates of this feed not yet ended
    page_failures: int = 0
    last_page_error: str | None = None
    new: int = 0  # entries not published before this run (for the feed's publishing rate)


def run_once(
    settings: Settings,
    feeds: Sequence[FeedSource],
    *,
    poll_all: bool = False,
    interval: timedelta = DEFAULT_INTERVAL,
    on_progress: Callable[[int, int], None] | None = None,
    fetcher_factory: FetcherFactory | None = None,
) -> RunSummary:
    """Poll the due feeds (or all), publish every new entry, commit. Raises BrokerUnavailable,
    TaxonomyError, StateError for the caller to report in one line."""
    return asyncio.run(
        _run_once(
            settings,
            feeds,
            poll_all=poll_all,
            interval=interval,
            on_progress=on_progress,
            fetcher_factory=fetcher_factory or Fetcher,
        )
    )


async def _run_once(
    settings: Settings,
    feeds: Sequence[FeedSource],
    *,
    poll_all: bool,
    interval: timedelta,
    on_progress: Callable[[int, int], None] | None,
    fetcher_factory: FetcherFactory,
) -> RunSummary:
    started = time.monotonic()
    schedule = schedule_settings(settings, interval)
    summary = RunSummary()
    taxonomy = load_taxonomy(settings.taxonomy)
    tagger = Tagger(taxonomy)
    with ExitStack() as stack:
        store = stack.enter_context(StateStore.in_dir(settings.state_dir))
        publisher = stack.enter_context(Publisher(kafka_settings(settings)))
        await asyncio.to_thread(publisher.ensure_topics, all_topics(settings.topic_prefix, taxonomy))
        archive = stack.enter_context(WarcArchive(settings.archive_path)) if settings.archive else None
        executor = stack.enter_context(extraction_pool(settings.extract_workers))
        now = utc_now()
        known = store.feeds_for(f.url for f in feeds)
        targets = due_feeds(feeds, known, now, poll_all=poll_all)
        fetch_log: list[tuple] = []  # type: ignore[type-arg]
        async with fetcher_factory(fetch_settings(settings)) as fetcher:
            poller = Poller(
                fetch=fetcher.fetch,
                executor=executor,
                archive_write=archive.write if archive is not None else None,
                fetch_log=fetch_log,
                discover=settings.discover_feeds,
                discovery_probes=settings.discovery_probes,
            )
            polled_from = time.monotonic()
            polls = await poll_feeds(poller, targets, known, per_host=settings.per_host)
            log.info("phase poll: %d feeds in %.1f s", len(polls), time.monotonic() - polled_from)
            summary.feeds_polled = len(polls)

            # canonicalise + dedup, in feed-file order so the first feed carrying an article is its feed
            tallies: dict[str, _FeedTally] = {p.feed.url: _FeedTally() for p in polls}
            owner: dict[str, str] = {}  # URL a candidate's feed names -> the listed feed's URL

            def listed(candidate: Candidate) -> str:
                url = _feed_url(candidate)
                return owner.get(url, url)
            letters: list[Outgoing] = []
            chosen: dict[str, Candidate] = {}
            ordered: list[Candidate] = []
            ids_of: dict[str, list[str]] = {}  # listed feed URL -> its candidates' ids
            for item in polls:
                if item.result.not_modified:
                    summary.feeds_not_modified += 1
                elif item.unchanged:
                    summary.feeds_unchanged += 1
                if item.error is not None:
                    summary.feeds_failed += 1
                    log.info("feed failed url=%s stage=%s reason=%s detail=%s", item.feed.url, item.stage, item.error, item.detail)
                if item.error is not None and _newly_failing(item):
                    letters.append(
                        _dead_letter_out(
                            settings.topic_prefix,
                            DeadLetter(
                                stage="parse" if item.stage == "parse" else "fetch",
                                reason=item.error,
                                url=item.feed.url,
                                feed_url=item.feed.url,
                                at=utc_iso(utc_now()),
                                attempts=(item.previous.consecutive_failures if item.previous else 0) + 1,
                                detail=item.detail,
                            ),
                            ref=None,
                        )
                    )
                if item.parsed is None:
                    continue
                # a feed found by discovery is the entries' feed; state and tallies stay under the listed URL
                source = FeedSource(item.discovered, item.feed.title) if item.discovered else item.feed
                owner[source.url] = item.feed.url
                candidates, rejected = entry_candidates(item.parsed, source, item.result.fetched_at)
                ids_of[item.feed.url] = [c.id for c in candidates]
                summary.entries_seen += len(item.parsed.entries)
                tallies[item.feed.url].candidates = len(candidates)
                for entry, reason in rejected:
                    letters.append(
                        _dead_letter_out(
                            settings.topic_prefix,
                            DeadLetter(
                                stage="parse",
                                reason=reason.split(":")[0],
                                url=entry.link,
                                feed_url=item.feed.url,
                                at=utc_iso(utc_now()),
                                detail=f"entry {entry.guid or entry.title!r}: {reason}",
                            ),
                        )
                    )
                for candidate in candidates:
                    if candidate.id in chosen:
                        summary.duplicates += 1
                        continue
                    chosen[candidate.id] = candidate
                    ordered.append(candidate)
            already = store.published_among(c.id for c in ordered)
            summary.duplicates += len(already)
            fresh = [c for c in ordered if c.id not in already]
            for candidate in fresh:
                tallies[listed(candidate)].pending += 1
            for url, ids in ids_of.items():
                tallies[url].new = sum(1 for i in ids if i not in already)

            done = 0

            def progressed(step: int) -> None:
                nonlocal done
                done += step
                if on_progress is not None:
                    on_progress(done, len(fresh))

            def commit(batch: list[Outcome]) -> None:
                rows = [
                    PublishedRow(o.candidate.id, o.candidate.url, _feed_url(o.candidate))
                    for o in batch
                    if o.status != "failed"
                ]
                store.mark_published(rows, utc_now())

            processor = Processor(
                settings=settings,
                tagger=tagger,
                taxonomy=taxonomy,
                publisher=publisher,
                executor=executor,
                on_progress=progressed,
                on_batch=commit,
            )
            pages = LivePages(fetcher.fetch, archive.write if archive is not None else None, fetch_log)
            processed_from = time.monotonic()
            outcomes = await processor.process(fresh, pages)
            log.info("phase articles: %d in %.1f s", len(fresh), time.monotonic() - processed_from)

        # commit: ids first (only what the broker acknowledged), then the feeds' validators
        if letters:
            for result in await processor.send(letters):
                if result.ok:
                    summary.dead_letters += 1
                else:
                    summary.publish_failures += 1
        finished = utc_now()
        for outcome in outcomes:
            candidate = outcome.candidate
            key = listed(candidate)
            if outcome.page_error is not None and outcome.status == "published":
                tallies[key].page_failures += 1
                tallies[key].last_page_error = outcome.page_error
                summary.page_failures += 1
            if outcome.status == "failed":
                summary.publish_failures += 1
                continue
            tallies[key].pending -= 1
            if outcome.status == "dead-letter":
                summary.dead_letters += 1
            else:
                summary.published += 1
                if outcome.text_source == "page":
                    summary.from_page += 1
                else:
                    summary.from_feed += 1
                assert outcome.message is not None
                for topic in outcome.message.topics:
                    summary.topics[topic.slug] = summary.topics.get(topic.slug, 0) + 1
        store.log_fetches(fetch_log)
        saved = [
            feed_state_after(
                item,
                now=finished,
                schedule=schedule,
                entries_seen=len(item.parsed.entries) if item.parsed else 0,
                page_failures=tallies[item.feed.url].page_failures,
                last_page_error=tallies[item.feed.url].last_page_error,
                all_done=tallies[item.feed.url].pending == 0,
                new_entries=tallies[item.feed.url].new,
            )
            for item in polls
        ]
        store.save_feeds(saved)
        log.info("phase commit: done at %.1f s", time.monotonic() - started)
        _count_health(summary, feeds, {**known, **{s.url: s for s in saved}}, utc_now())
    summary.elapsed = time.monotonic() - started
    return summary


def _count_health(
    summary: RunSummary, feeds: Sequence[FeedSource], states: dict[str, FeedState], now: datetime
) -> None:
    """Failing, parked and waiting feeds of the list, polled in this run or not."""
    for url in {f.url for f in feeds}:
        state = states.get(url)
        if state is None:
            continue
        summary.feeds_failing += state.consecutive_failures > 0
        summary.feeds_parked += state.parked
        summary.feeds_waiting += state.waiting(now)


def _newly_failing(item: FeedPoll) -> bool:
    """A failing feed is dead-lettered when it starts failing or fails differently, not on every poll
    (its health in the state store tells the rest)."""
    previous = item.previous
    if previous is None or previous.consecutive_failures == 0 or previous.last_error is None:
        return True
    return not previous.last_error.startswith(f"{item.stage}: {item.error}")


def _feed_url(candidate: Candidate) -> str:
    assert candidate.feed is not None  # live candidates always come from a feed
    return candidate.feed.url
