"""One live poll cycle: the feeds that are due (or all), every new entry, published and committed."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta

from newswire import __version__, stopping
from newswire.config import Settings
from newswire.connectors.http import Fetcher, FetchSettings
from newswire.connectors.kafka import BrokerUnavailable, KafkaSettings, Outgoing, Publisher
from newswire.connectors.state import StateError, StateStore
from newswire.connectors.warc_writer import WarcArchive
from newswire.contract import DeadLetter, utc_iso, utc_now
from newswire.metrics import metrics, poll_outcome
from newswire.pipeline import (
    Candidate,
    FeedPoll,
    LivePages,
    Outcome,
    Processor,
    RunSummary,
    _dead_letter_out,
    all_topics,
    entry_candidates,
    feed_state_after,
)
from newswire.polling import Poller, poll_feeds
from newswire.pool import extraction_pool
from newswire.processors.schedule import ScheduleSettings
from newswire.processors.tagging import Tagger, load_taxonomy
from newswire.records import Entry, FeedSource, FeedState, FetchResult, PublishedRow

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
        partitions=settings.partitions,
        replication_factor=settings.replication_factor,
    )


def _pid_namespace() -> str:
    """This process's PID namespace (two containers may share a host name, never a namespace)."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "-"


def rejected_entry_key(feed_url: str, entry: Entry) -> str:
    """The id under which an entry that cannot be an article (no usable link) is marked done once its
    dead letter is acknowledged: every later poll of a changed feed dead-lettered it again."""
    ident = entry.guid or entry.title or entry.summary or entry.content or ""
    return hashlib.sha256(f"rejected-entry\n{feed_url}\n{ident}".encode()).hexdigest()[:32]


def worker_id() -> str:
    """Who holds a lease: host, process and run, so two runs of one process never share leases; then
    the PID namespace, so that a run can tell a dead process of its own machine (see release_dead_owners)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}:{_pid_namespace()}"


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, as another user's process
        return False
    return False


def release_dead_owners(store: StateStore) -> list[str]:
    """Give back the leases and claims of runs on this machine whose process is gone.

    A run killed with SIGKILL (or by the OOM killer) cannot release what it leased: every feed it held
    stayed out of reach of the next runs for the lease's length (10 minutes by default), and they said
    nothing of it. Only owners of this host and PID namespace are judged; a PID taken since by another
    process keeps its leases until they expire, as before. Older owner names (without a namespace) and
    other machines' leases expire as they always did."""
    host, namespace = socket.gethostname(), _pid_namespace()
    released = []
    for owner in sorted(store.lease_owners()):
        parts = owner.split(":")
        if len(parts) != 4 or parts[0] != host or parts[3] != namespace or not parts[1].isdigit():
            continue
        if int(parts[1]) == os.getpid() or not _process_gone(int(parts[1])):
            continue
        store.release_feeds(owner)
        store.release_articles(owner)
        released.append(owner)
        log.warning("released the leases of run %s: its process %s is gone (killed?)", owner, parts[1])
    return released


def _timed(fetch: Callable[..., Awaitable[FetchResult]]) -> Callable[..., Awaitable[FetchResult]]:
    """The fetcher's ``fetch`` with its latency recorded by kind (feed, page)."""

    async def timed(url: str, *, kind: str, **options: object) -> FetchResult:
        with metrics().timed(metrics().fetch_seconds, kind=kind):
            return await fetch(url, kind=kind, **options)

    return timed


def run_leased(
    settings: Settings,
    feeds: Sequence[FeedSource],
    *,
    poll_all: bool = False,
    interval: timedelta = DEFAULT_INTERVAL,
    on_progress: Callable[[int, int], None] | None = None,
    fetcher_factory: FetcherFactory | None = None,
) -> RunSummary:
    """``run --once``: with ``lease_batch`` set, lease and poll batches of due feeds until none is left
    for this worker (other workers take batches beside it); else one :func:`run_once`."""
    try:
        if not settings.lease_batch:
            total = run_once(settings, feeds, poll_all=poll_all, interval=interval, on_progress=on_progress,
                             fetcher_factory=fetcher_factory)
        else:
            started, total = utc_now(), RunSummary()
            while True:
                part = run_once(settings, feeds, poll_all=poll_all, interval=interval, on_progress=on_progress,
                                fetcher_factory=fetcher_factory, polled_before=started)
                total.add(part)
                if part.feeds_polled == 0:
                    break
    except Exception as exc:
        count_cycle(None, exc)
        raise
    count_cycle(total)
    return total


def count_cycle(summary: RunSummary | None, error: BaseException | None = None) -> None:
    """A poll cycle's end, for ``newswire_cycles_total``: completed, incomplete (articles the broker did
    not acknowledge), unavailable (the broker or the state store could not be reached), or error."""
    if error is not None:
        metrics().cycle_ended("unavailable" if isinstance(error, (BrokerUnavailable, StateError)) else "error")
    elif summary is not None:
        metrics().cycle_ended("completed" if summary.completed else "incomplete")


@dataclass
class _FeedTally:
    candidates: int = 0
    duplicates: int = 0  # candidates another feed of this run carried first
    rejected: int = 0  # entries that cannot be an article (no usable link): dead-lettered
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
    polled_before: datetime | None = None,
) -> RunSummary:
    """Poll the due feeds (or all), publish every new entry, commit. Raises BrokerUnavailable,
    TaxonomyError, StateError for the caller to report in one line.

    The feeds polled are leased in the state store first (``settings.lease_batch`` of them at most), and
    every article is claimed by id before it is published, so workers sharing one store never poll a
    feed together nor publish an article twice. ``polled_before``: leave feeds polled since then."""
    return stopping.run(
        _run_once(
            settings,
            feeds,
            poll_all=poll_all,
            interval=interval,
            on_progress=on_progress,
            fetcher_factory=fetcher_factory or Fetcher,
            polled_before=polled_before,
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
    polled_before: datetime | None = None,
) -> RunSummary:
    started = time.monotonic()
    schedule = schedule_settings(settings, interval)
    summary = RunSummary()
    taxonomy = load_taxonomy(settings.taxonomy)
    tagger = Tagger(taxonomy)
    with ExitStack() as stack:
        store = stack.enter_context(StateStore.open(settings.state_dir, settings.state_url))
        publisher = stack.enter_context(Publisher(kafka_settings(settings)))
        await asyncio.to_thread(publisher.ensure_topics, all_topics(settings.topic_prefix, taxonomy))
        archive = stack.enter_context(WarcArchive(settings.archive_path)) if settings.archive else None
        executor = stack.enter_context(extraction_pool(settings.extract_workers))
        now = utc_now()
        worker, lease_for = worker_id(), timedelta(seconds=settings.lease_seconds)
        store.register_feeds((f.url, f.title) for f in feeds)
        release_dead_owners(store)
        # whatever this run leased or claimed and did not finish goes back when it ends, even by an error
        stack.callback(store.release_feeds, worker)
        stack.callback(store.release_articles, worker)
        leased = store.lease_due(
            [f.url for f in feeds],
            owner=worker,
            now=now,
            lease_for=lease_for,
            limit=settings.lease_batch or None,
            poll_all=poll_all,
            polled_before=polled_before,
        )
        summary.feeds_leased = store.leased_by_others([f.url for f in feeds if f.url not in leased], worker, now)
        renewal = asyncio.create_task(_renew(store, worker, lease_for))
        stack.callback(renewal.cancel)
        known = {url: state for url, state in leased.items() if state is not None}
        first: dict[str, FeedSource] = {}
        for feed in feeds:
            first.setdefault(feed.url, feed)
        targets = [first[url] for url in leased]
        fetch_log: list[tuple] = []  # type: ignore[type-arg]
        async with fetcher_factory(fetch_settings(settings)) as fetcher:
            timed_fetch = _timed(fetcher.fetch)
            poller = Poller(
                fetch=timed_fetch,
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
            own_of: dict[str, list[str]] = {}  # listed feed URL -> ids of the candidates it carried first
            for item in polls:
                if item.result.not_modified:
                    summary.feeds_not_modified += 1
                    log.info("feed not modified url=%s status=304", item.feed.url)
                elif item.unchanged:
                    summary.feeds_unchanged += 1
                    log.info("feed unchanged url=%s reason=same-body (not parsed again)", item.feed.url)
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
                tallies[item.feed.url].rejected = len(rejected)
                keys = {rejected_entry_key(item.feed.url, entry): (entry, reason) for entry, reason in rejected}
                told = store.published_among(keys) if keys else set()
                for key, (entry, reason) in keys.items():
                    if key in told:  # dead-lettered by an earlier poll: once is enough
                        log.debug("entry rejected before feed=%s entry=%r", item.feed.url, entry.guid or entry.title)
                        continue
                    log.info("entry rejected feed=%s reason=%s entry=%r", item.feed.url, reason, entry.guid or entry.title)
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
                            ref=PublishedRow(key, entry.link or item.feed.url, item.feed.url),
                        )
                    )
                for candidate in candidates:
                    if candidate.id in chosen:
                        summary.duplicates += 1
                        tallies[item.feed.url].duplicates += 1
                        if log.isEnabledFor(logging.DEBUG):
                            log.debug(
                                "entry duplicate id=%s url=%s feed=%s first_feed=%s", candidate.id, candidate.url,
                                item.feed.url, listed(chosen[candidate.id]),
                            )
                        continue
                    chosen[candidate.id] = candidate
                    ordered.append(candidate)
                    own_of.setdefault(item.feed.url, []).append(candidate.id)
            for item in polls:
                metrics().poll(poll_outcome(item.result.status, item.error))
            claimed, already = store.claim_articles(
                (c.id for c in ordered), owner=worker, now=utc_now(), lease_for=lease_for
            )
            summary.duplicates += len(already)
            fresh = [c for c in ordered if c.id in claimed]
            # claimed by another worker publishing them now: settled after our own (below)
            elsewhere = [c for c in ordered if c.id not in claimed and c.id not in already]
            for candidate in fresh + elsewhere:
                tallies[listed(candidate)].pending += 1
            for url, ids in ids_of.items():
                tallies[url].new = sum(1 for i in ids if i not in already)
                tally, own = tallies[url], own_of.get(url, [])
                published_before = sum(1 for i in own if i in already)
                log.info(
                    "feed entries url=%s entries=%d new=%d already_published=%d duplicates=%d rejected=%d",
                    url, tally.candidates + tally.rejected, len(own) - published_before, published_before,
                    tally.duplicates, tally.rejected,
                )
            for candidate in ordered if log.isEnabledFor(logging.DEBUG) else ():
                if candidate.id in already:
                    decision = "already-published"
                elif candidate.id in claimed:
                    decision = "new"
                else:
                    decision = "claimed-elsewhere"  # another worker is publishing it now
                log.debug("entry %s id=%s url=%s feed=%s", decision, candidate.id, candidate.url, listed(candidate))

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
                failed = [o.candidate.id for o in batch if o.status == "failed"]
                if failed:  # another worker may take them at once
                    store.release_articles(worker, failed)

            processor = Processor(
                settings=settings,
                tagger=tagger,
                taxonomy=taxonomy,
                publisher=publisher,
                executor=executor,
                on_progress=progressed,
                on_batch=commit,
            )
            pages = LivePages(timed_fetch, archive.write if archive is not None else None, fetch_log)
            processed_from = time.monotonic()
            outcomes = await processor.process(fresh, pages)
            outcomes += await _settle_elsewhere(
                elsewhere, store, worker, lease_for, processor, pages, summary,
                lambda c: _settled(tallies[listed(c)]),
            )
            log.info("phase articles: %d in %.1f s", len(fresh), time.monotonic() - processed_from)

        # commit: ids first (only what the broker acknowledged), then the feeds' validators
        if letters:
            told_now: list[PublishedRow] = []
            for result in await processor.send(letters):
                if result.ok:
                    summary.dead_letters += 1
                    if isinstance(result.item.ref, PublishedRow):
                        told_now.append(result.item.ref)
                else:
                    summary.publish_failures += 1
            store.mark_published(told_now, utc_now())
        finished = utc_now()
        for outcome in outcomes:
            summary.count(outcome)
            tally = tallies[listed(outcome.candidate)]
            if outcome.page_error is not None and outcome.status == "published":
                tally.page_failures += 1
                tally.last_page_error = outcome.page_error
            if outcome.status != "failed":
                tally.pending -= 1
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
        metrics().duplicates.inc(summary.duplicates)
        metrics().most_overdue.set(store.most_overdue(utc_now()).total_seconds())
        log.info("phase commit: done at %.1f s", time.monotonic() - started)
        if settings.lease_batch:  # workers share a store: its counts, from the database
            health = store.health_counts(utc_now())
            summary.feeds_failing, summary.feeds_parked, summary.feeds_waiting = (
                health.failing, health.parked, health.waiting)
        else:
            listed_states = store.feeds_for(f.url for f in feeds)
            _count_health(summary, feeds, {**listed_states, **{s.url: s for s in saved}}, utc_now())
    summary.elapsed = time.monotonic() - started
    return summary


async def _renew(store: StateStore, worker: str, lease_for: timedelta) -> None:
    """Renew this run's leases and claims three times per lease, until cancelled at the run's end."""
    while True:
        await asyncio.sleep(lease_for.total_seconds() / 3)
        try:
            await asyncio.to_thread(store.renew, worker, utc_now(), lease_for)
        except StateError as exc:  # the database is back next time, or the leases lapse: others poll
            log.warning("lease renewal failed: %s", exc)


def _settled(tally: _FeedTally) -> None:
    tally.pending -= 1


async def _settle_elsewhere(
    elsewhere: list[Candidate],
    store: StateStore,
    owner: str,
    lease_for: timedelta,
    processor: Processor,
    pages: LivePages,
    summary: RunSummary,
    settled: Callable[[Candidate], None],
) -> list[Outcome]:
    """Articles another worker had claimed when this run wanted them: wait until that worker has
    published them (a duplicate here) or its claim expired (it died: this run claims and publishes
    them). What is still claimed after a lease time stays pending, so the feed is read again."""
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + lease_for.total_seconds() + 2
    while elsewhere and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        claimed, done = store.claim_articles(
            (c.id for c in elsewhere), owner=owner, now=utc_now(), lease_for=lease_for
        )
        for candidate in elsewhere:
            if candidate.id in done:
                summary.duplicates += 1
                settled(candidate)
        if claimed:
            outcomes += await processor.process([c for c in elsewhere if c.id in claimed], pages)
        elsewhere = [c for c in elsewhere if c.id not in claimed and c.id not in done]
    return outcomes


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
