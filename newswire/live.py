"""One live poll cycle: the feeds that are due (or all), every new entry, published and committed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta

from newswire import __version__
from newswire.config import Settings
from newswire.connectors.http import Fetcher, FetchSettings
from newswire.connectors.kafka import KafkaSettings, Outgoing, Publisher
from newswire.connectors.state import PublishedRow, StateStore
from newswire.connectors.warc_writer import WarcArchive
from newswire.contract import DeadLetter, utc_iso, utc_now
from newswire.pipeline import (
    Candidate,
    FeedPoll,
    Outcome,
    LivePages,
    Processor,
    RunSummary,
    _dead_letter_out,
    all_topics,
    body_hash,
    due_feeds,
    entry_candidates,
    extraction_pool,
    feed_state_after,
)
from newswire.processors.feeds import FeedParseError, parse_feed
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


def run_once(
    settings: Settings,
    feeds: Sequence[FeedSource],
    *,
    poll_all: bool = False,
    interval: timedelta = DEFAULT_INTERVAL,
    on_progress: Callable[[int, int], None] | None = None,
) -> RunSummary:
    """Poll the due feeds (or all), publish every new entry, commit. Raises BrokerUnavailable,
    TaxonomyError, StateError for the caller to report in one line."""
    return asyncio.run(_run_once(settings, feeds, poll_all=poll_all, interval=interval, on_progress=on_progress))


async def _run_once(
    settings: Settings,
    feeds: Sequence[FeedSource],
    *,
    poll_all: bool,
    interval: timedelta,
    on_progress: Callable[[int, int], None] | None,
) -> RunSummary:
    started = time.monotonic()
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
        targets = list(feeds) if poll_all else due_feeds(feeds, store, now)
        fetch_log: list[tuple] = []  # type: ignore[type-arg]
        async with Fetcher(fetch_settings(settings)) as fetcher:

            async def poll(feed: FeedSource) -> FeedPoll:
                previous = store.feed(feed.url)
                result = await fetcher.fetch(
                    feed.url,
                    kind="feed",
                    etag=previous.etag if previous else None,
                    last_modified=previous.last_modified if previous else None,
                )
                fetch_log.append((result.fetched_at, "feed", feed.url, result.status, result.error, len(result.body)))
                item = FeedPoll(feed=feed, previous=previous, result=result)
                if result.not_modified:
                    return item
                if not result.ok:
                    item.error, item.detail = result.error or f"http-{result.status}", result.detail
                    return item
                if archive is not None:
                    archive.write(result, "feed")
                if previous is not None and previous.body_hash == body_hash(result.body):
                    item.unchanged = True
                    return item
                try:
                    parsed = parse_feed(result.body, result.final_url, result.headers.get("content-type"))
                except FeedParseError as exc:
                    item.error, item.stage, item.detail = exc.reason, "parse", str(exc)
                    return item
                if parsed.bozo and not parsed.entries:
                    # ill-formed and nothing salvageable: a broken feed, not an empty one
                    item.error, item.stage, item.detail = "ill-formed", "parse", parsed.bozo[:300]
                    return item
                item.parsed = parsed
                return item

            polls = await asyncio.gather(*(poll(f) for f in targets))
            summary.feeds_polled = len(polls)

            # canonicalise + dedup, in feed-file order so the first feed carrying an article is its feed
            tallies: dict[str, _FeedTally] = {p.feed.url: _FeedTally() for p in polls}
            letters: list[Outgoing] = []
            chosen: dict[str, Candidate] = {}
            ordered: list[Candidate] = []
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
                candidates, rejected = entry_candidates(item.parsed, item.feed, item.result.fetched_at)
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
                tallies[_feed_url(candidate)].pending += 1

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
            outcomes = await processor.process(fresh, pages)

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
            key = _feed_url(candidate)
            if outcome.page_error is not None and outcome.status == "published":
                tallies[key].page_failures += 1
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
        for item in polls:
            tally = tallies[item.feed.url]
            store.save_feed(
                feed_state_after(
                    item,
                    now=finished,
                    interval=interval,
                    entries_seen=len(item.parsed.entries) if item.parsed else 0,
                    page_failures=tally.page_failures,
                    all_done=tally.pending == 0,
                )
            )
    summary.elapsed = time.monotonic() - started
    return summary


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
