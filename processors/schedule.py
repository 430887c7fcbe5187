"""When to poll a feed next: pure functions from what one poll saw to the feed's next poll time.

The rules, in the order they apply (defaults in :class:`ScheduleSettings`):

* **Adaptive interval.** Each feed keeps an estimate of how often it publishes new entries: a count of
  new entries that decays exponentially with time constant ``rate_window`` (7 days), divided by the time
  it covers. A feed seen for the first time is bootstrapped from its entries' own dates (``n`` dated
  entries since the oldest of them), so a busy feed is polled often from its second poll on. The next
  interval is the time in which ``entries_per_poll`` (1) new entries are expected, between ``floor``
  (5 min) and ``ceiling`` (24 h). A feed with no estimate yet (no dated entries) uses
  ``default_interval`` (15 min, the CLI's ``--interval``). When every entry of a document is new, the
  feed's window overflowed and entries may have been missed: the next interval is at most half the
  time since the last successful poll.
* **Jitter.** Intervals and back-offs are spread by +/- ``jitter`` (10 %) so that feeds added together
  do not stay in lock-step forever.
* **Publisher hints are minimums.** RSS ``<ttl>`` / ``sy:updatePeriod`` (``ParsedFeed.ttl_seconds``,
  remembered across 304 answers), ``Cache-Control: max-age`` (else ``Expires`` minus ``Date``) of the
  last answer: the feed is not polled before they run out (each capped at ``ceiling``, so a feed
  claiming a year of freshness is still polled daily).
* **Errors back off.** After ``n`` consecutive failures the delay is ``backoff_base * 2**(n-1)`` (10 min,
  20 min, 40 min ...) up to ``backoff_max`` (24 h), jittered, and never shorter than the feed's healthy
  interval.
* **Retry-After.** A 429 or 503 with ``Retry-After`` (seconds or an HTTP date) is not asked again before
  that time (capped at ``retry_after_max``, 7 days). This holds even for ``run --all``: it is the server's
  explicit request.
* **Parking.** After ``park_after`` (10) consecutive failures, or at once on ``410 Gone``, the feed is
  parked: polled only every ``park_retry`` (7 days) or with ``--all``, and reported by ``feeds status``.
  One success un-parks it.

Everything here is pure: the caller passes ``now`` and a random ``draw`` in [0, 1) for the jitter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

__all__ = [
    "PollObservation",
    "Schedule",
    "ScheduleSettings",
    "ScheduleState",
    "backoff_delay",
    "dated_rate",
    "entries_per_day",
    "freshness_seconds",
    "plan",
    "retry_after",
]

_DAY = 86400.0
# Entry dates more than this far in the future are publishers' mistakes, not evidence of a rate.
_FUTURE_SLACK = timedelta(hours=1)
# The dated bootstrap never claims a window shorter than this: ten entries dated within one minute
# (a feed stamping its build time on every entry) must not read as ten entries a minute.
_MIN_DATED_WINDOW = timedelta(hours=1)
_MAX_DATED_ENTRIES = 100
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,10})\"?", re.IGNORECASE)


class ScheduleConfigError(ValueError):
    """A schedule setting that makes no sense (one-line message)."""


@dataclass(frozen=True)
class ScheduleSettings:
    default_interval: timedelta = timedelta(minutes=15)
    floor: timedelta = timedelta(minutes=5)
    ceiling: timedelta = timedelta(hours=24)
    entries_per_poll: float = 1.0
    rate_window: timedelta = timedelta(days=7)
    jitter: float = 0.1
    backoff_base: timedelta = timedelta(minutes=10)
    backoff_max: timedelta = timedelta(hours=24)
    park_after: int = 10
    park_retry: timedelta = timedelta(days=7)
    retry_after_max: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        zero = timedelta(0)
        for name in ("default_interval", "floor", "ceiling", "rate_window", "backoff_base", "backoff_max",
                     "park_retry", "retry_after_max"):
            if getattr(self, name) <= zero:
                raise ScheduleConfigError(f"schedule setting {name} must be positive")
        if self.floor > self.ceiling:
            raise ScheduleConfigError(
                f"poll floor ({self.floor}) is longer than the poll ceiling ({self.ceiling})"
            )
        if not 0 <= self.jitter < 1:
            raise ScheduleConfigError(f"jitter must be in [0, 1), got {self.jitter}")
        if self.park_after < 1:
            raise ScheduleConfigError(f"park_after must be at least 1, got {self.park_after}")
        if not self.entries_per_poll > 0:
            raise ScheduleConfigError(f"entries_per_poll must be positive, got {self.entries_per_poll}")

    def clamp(self, delay: timedelta) -> timedelta:
        return min(max(delay, self.floor), self.ceiling)


@dataclass(frozen=True)
class ScheduleState:
    """The schedule-relevant part of a feed's stored state before this poll."""

    rate_count: float | None = None  # decayed count of new entries (None: no estimate yet)
    rate_since: datetime | None = None  # start of the time the estimate covers
    last_success_at: datetime | None = None
    consecutive_failures: int = 0
    parked_since: datetime | None = None
    ttl_seconds: int | None = None  # the publisher's last ttl / sy:updatePeriod hint


@dataclass(frozen=True)
class PollObservation:
    """What one poll of a feed saw."""

    at: datetime
    failed: bool
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    parsed: bool = False  # a new document was parsed (False for 304, identical body, failure)
    new_entries: int = 0  # entries not seen before (meaningful when ``parsed``)
    document_entries: int = 0
    entry_dates: Sequence[datetime] = ()
    ttl_seconds: int | None = None  # from the parsed document


@dataclass(frozen=True)
class Schedule:
    """The feed's schedule after the poll: what to store."""

    next_poll_at: datetime
    reason: str  # what decided next_poll_at: adaptive, default, floor, ceiling, ttl, max-age, backoff,
    #              retry-after, parked
    rate_count: float | None
    rate_since: datetime | None
    consecutive_failures: int
    parked_since: datetime | None
    retry_after_until: datetime | None
    ttl_seconds: int | None

    @property
    def parked(self) -> bool:
        return self.parked_since is not None


# -- header parsing ------------------------------------------------------------------------------------


def retry_after(headers: Mapping[str, str], now: datetime) -> datetime | None:
    """The moment a ``Retry-After`` header (delay in seconds, or an HTTP date) names, or None.

    A date in the past or an unparseable value gives None; headers are looked up lower-case.
    """
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    if value.isdigit():
        seconds = int(value[:12])
        return now + timedelta(seconds=min(seconds, 10**9)) if seconds > 0 else None
    when = _http_date(value)
    return when if when is not None and when > now else None


def freshness_seconds(headers: Mapping[str, str], now: datetime) -> int | None:
    """How long the answer says it stays fresh: ``Cache-Control: max-age``, else ``Expires - Date``."""
    control = headers.get("cache-control") or ""
    match = _MAX_AGE.search(control)
    if match:
        seconds = int(match.group(1))
        return seconds if seconds > 0 else None
    expires = _http_date(headers.get("expires") or "")
    if expires is None:
        return None
    served = _http_date(headers.get("date") or "") or now
    seconds = int((expires - served).total_seconds())
    return seconds if seconds > 0 else None


def _http_date(value: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when


# -- publishing rate -----------------------------------------------------------------------------------


def dated_rate(dates: Sequence[datetime], now: datetime) -> tuple[float, timedelta] | None:
    """(entries per day, window) from the entries' own dates: ``n`` entries since the oldest of them.

    Uses the newest :data:`_MAX_DATED_ENTRIES` dates at or before ``now`` (plus a little slack); None
    when fewer than two distinct dates remain.
    """
    usable = sorted((d for d in dates if d <= now + _FUTURE_SLACK), reverse=True)[:_MAX_DATED_ENTRIES]
    if len(usable) < 2 or usable[0] == usable[-1]:
        return None
    window = max(now - usable[-1], _MIN_DATED_WINDOW)
    return len(usable) / (window.total_seconds() / _DAY), window


def _coverage(tau: float, covered: float) -> float:
    """Seconds of observation the decayed count stands for: tau * (1 - e^(-covered/tau))."""
    return tau * -math.expm1(-max(covered, 0.0) / tau)


def entries_per_day(state: ScheduleState, now: datetime, settings: ScheduleSettings) -> float | None:
    """The current estimate of new entries per day, or None when the feed has none yet."""
    if state.rate_count is None or state.rate_since is None:
        return None
    tau = settings.rate_window.total_seconds()
    reference = state.last_success_at or now
    covered = _coverage(tau, (reference - state.rate_since).total_seconds())
    if covered <= 0:
        return None
    # Time without a poll since the reference counts as silence only once it is observed (next poll).
    return state.rate_count / covered * _DAY


def _updated_rate(
    state: ScheduleState, seen: PollObservation, settings: ScheduleSettings
) -> tuple[float | None, datetime | None]:
    tau = settings.rate_window.total_seconds()
    now = seen.at
    if state.rate_count is None or state.rate_since is None or state.last_success_at is None:
        # First success: the entries present are a backlog, not news. Bootstrap from their dates.
        if not seen.parsed:
            return state.rate_count, state.rate_since
        bootstrap = dated_rate(seen.entry_dates, now)
        if bootstrap is None:
            # No usable dates: start counting from now, with nothing counted yet.
            return 0.0, now
        per_day, window = bootstrap
        window = min(window, settings.rate_window * 4)
        since = now - window
        count = per_day / _DAY * _coverage(tau, window.total_seconds())
        return count, since
    elapsed = max((now - state.last_success_at).total_seconds(), 0.0)
    count = state.rate_count * math.exp(-elapsed / tau)
    if seen.parsed:
        count += seen.new_entries
    return count, state.rate_since


def _adaptive_delay(
    count: float | None, since: datetime | None, now: datetime, settings: ScheduleSettings
) -> tuple[timedelta, str]:
    if count is None or since is None:
        return settings.default_interval, "default"
    covered = _coverage(settings.rate_window.total_seconds(), (now - since).total_seconds())
    if covered <= 0:
        return settings.default_interval, "default"
    per_second = count / covered
    if per_second <= 0:
        if covered < settings.ceiling.total_seconds():
            # Too short a silence to call the feed dead: nothing seen yet in its first hours.
            return settings.default_interval, "default"
        return settings.ceiling, "ceiling"
    return timedelta(seconds=min(settings.entries_per_poll / per_second, 10**9)), "adaptive"


# -- the plan ------------------------------------------------------------------------------------------


def backoff_delay(failures: int, settings: ScheduleSettings, draw: float) -> timedelta:
    """Exponential back-off after ``failures`` consecutive failures (>= 1), jittered by ``draw``."""
    exponent = min(max(failures, 1) - 1, 40)
    delay = min(settings.backoff_base * (2**exponent), settings.backoff_max)
    return _jittered(delay, settings.jitter, draw)


def _jittered(delay: timedelta, jitter: float, draw: float) -> timedelta:
    return delay * (1.0 + jitter * (2.0 * min(max(draw, 0.0), 1.0) - 1.0))


def plan(
    state: ScheduleState, seen: PollObservation, settings: ScheduleSettings, *, draw: float = 0.5
) -> Schedule:
    """The feed's schedule after the poll ``seen``. ``draw`` in [0, 1) picks the jitter (0.5: none)."""
    now = seen.at
    ttl = seen.ttl_seconds if seen.parsed and seen.ttl_seconds else state.ttl_seconds
    if not seen.failed:
        count, since = _updated_rate(state, seen, settings)
        delay, reason = _adaptive_delay(count, since, now, settings)
        if (
            seen.parsed
            and state.last_success_at is not None
            and seen.document_entries > 0
            and seen.new_entries >= seen.document_entries
        ):
            # Every entry was new: the document's window overflowed since the last poll.
            half = (now - state.last_success_at) / 2
            if half < delay:
                delay, reason = half, "adaptive"
        delay = _jittered(delay, settings.jitter, draw)
        if delay <= settings.floor:
            delay, reason = settings.floor, "floor"
        elif delay >= settings.ceiling:
            delay, reason = settings.ceiling, "ceiling"
        for hint, name in ((ttl, "ttl"), (freshness_seconds(seen.headers, now), "max-age")):
            if hint is not None:
                minimum = min(timedelta(seconds=hint), settings.ceiling)
                if minimum > delay:
                    delay, reason = minimum, name
        return Schedule(
            next_poll_at=now + delay,
            reason=reason,
            rate_count=count,
            rate_since=since,
            consecutive_failures=0,
            parked_since=None,
            retry_after_until=None,
            ttl_seconds=ttl,
        )

    failures = state.consecutive_failures + 1
    parked_since = state.parked_since
    if failures >= settings.park_after or seen.status == 410:
        parked_since = parked_since or now
    if parked_since is not None:
        delay, reason = settings.park_retry, "parked"
    else:
        delay, reason = backoff_delay(failures, settings, draw), "backoff"
        healthy, _ = _adaptive_delay(state.rate_count, state.rate_since, now, settings)
        healthy = settings.clamp(healthy)
        delay = max(delay, healthy)
    due = now + delay
    waiting_until: datetime | None = None
    if seen.status in (429, 503):
        asked = retry_after(seen.headers, now)
        if asked is not None:
            waiting_until = min(asked, now + settings.retry_after_max)
            if waiting_until > due:
                due, reason = waiting_until, "retry-after"
    return Schedule(
        next_poll_at=due,
        reason=reason,
        rate_count=state.rate_count,
        rate_since=state.rate_since,
        consecutive_failures=failures,
        parked_since=parked_since,
        retry_after_until=waiting_until,
        ttl_seconds=ttl,
    )
