"""The adaptive poll schedule: rate estimate, publisher hints, back-off, Retry-After, parking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from newswire.processors.schedule import (
    PollObservation,
    Schedule,
    ScheduleConfigError,
    ScheduleSettings,
    ScheduleState,
    backoff_delay,
    dated_rate,
    entries_per_day,
    freshness_seconds,
    plan,
    retry_after,
)

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
S = ScheduleSettings()
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def ok(at: datetime = NOW, **kw: object) -> PollObservation:
    return PollObservation(at=at, failed=False, status=kw.pop("status", 200), **kw)


def failed(at: datetime = NOW, status: int | None = None, headers: dict[str, str] | None = None) -> PollObservation:
    return PollObservation(at=at, failed=True, status=status, headers=headers or {})


def state_of(s: Schedule, at: datetime) -> ScheduleState:
    return ScheduleState(
        rate_count=s.rate_count,
        rate_since=s.rate_since,
        last_success_at=at if s.consecutive_failures == 0 else None,
        consecutive_failures=s.consecutive_failures,
        parked_since=s.parked_since,
        ttl_seconds=s.ttl_seconds,
    )


# -- headers -------------------------------------------------------------------------------------------


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    assert retry_after({"retry-after": "120"}, NOW) == NOW + timedelta(seconds=120)
    assert retry_after({"retry-after": "Tue, 03 Nov 2026 14:00:00 GMT"}, NOW) == NOW + 2 * HOUR
    # past dates, zero, garbage and absence mean "no instruction"
    assert retry_after({"retry-after": "Tue, 03 Nov 2026 10:00:00 GMT"}, NOW) is None
    assert retry_after({"retry-after": "0"}, NOW) is None
    assert retry_after({"retry-after": "soon"}, NOW) is None
    assert retry_after({"retry-after": "-5"}, NOW) is None
    assert retry_after({}, NOW) is None


def test_freshness_from_max_age_else_expires_minus_date() -> None:
    assert freshness_seconds({"cache-control": "public, max-age=1800"}, NOW) == 1800
    assert freshness_seconds({"cache-control": 'max-age="600", must-revalidate'}, NOW) == 600
    assert freshness_seconds({"cache-control": "s-maxage=900"}, NOW) is None  # for shared caches only
    assert freshness_seconds({"cache-control": "max-age=0"}, NOW) is None
    headers = {"date": "Tue, 03 Nov 2026 12:00:00 GMT", "expires": "Tue, 03 Nov 2026 13:00:00 GMT"}
    assert freshness_seconds(headers, NOW) == 3600
    assert freshness_seconds({"expires": "0"}, NOW) is None
    assert freshness_seconds({}, NOW) is None


# -- publishing rate -----------------------------------------------------------------------------------


def test_dated_rate_counts_entries_since_the_oldest_and_ignores_future_and_identical_dates() -> None:
    hourly = [NOW - HOUR * i for i in range(24)]
    per_day, window = dated_rate(hourly, NOW)
    assert window == 23 * HOUR and per_day == pytest.approx(24 / (23 / 24))
    assert dated_rate([NOW + timedelta(days=30), NOW - HOUR], NOW) is None  # one usable date
    assert dated_rate([NOW - MIN] * 10, NOW) is None  # build-time stamps are not a rate
    # ten entries a few seconds apart do not read as thousands a day: the window is at least an hour
    burst = [NOW - timedelta(seconds=s) for s in range(10)]
    assert dated_rate(burst, NOW)[0] == pytest.approx(240)


def test_a_busy_feed_is_polled_at_the_floor_and_a_quiet_one_at_the_ceiling() -> None:
    every_minute = [NOW - MIN * i for i in range(50)]
    busy = plan(ScheduleState(), ok(parsed=True, document_entries=50, entry_dates=every_minute), S)
    assert busy.next_poll_at - NOW == S.floor and busy.reason == "floor"

    monthly = [NOW - timedelta(days=30 * i) for i in range(12)]
    quiet = plan(ScheduleState(), ok(parsed=True, document_entries=12, entry_dates=monthly), S)
    assert quiet.next_poll_at - NOW == S.ceiling and quiet.reason == "ceiling"

    every_two_hours = [NOW - 2 * HOUR * i for i in range(20)]
    mid = plan(ScheduleState(), ok(parsed=True, document_entries=20, entry_dates=every_two_hours), S)
    assert mid.reason == "adaptive"
    assert 1.8 * HOUR < mid.next_poll_at - NOW < 2.2 * HOUR


def test_undated_feed_starts_at_the_default_interval() -> None:
    first = plan(ScheduleState(), ok(parsed=True, document_entries=5), S)
    assert first.next_poll_at - NOW == S.default_interval and first.reason == "default"
    assert first.rate_count == 0.0 and first.rate_since == NOW


def test_the_estimate_follows_what_later_polls_observe() -> None:
    settings = ScheduleSettings(jitter=0)
    # an undated feed that turns out to publish 8 entries an hour, polled every 15 min
    state = state_of(plan(ScheduleState(), ok(parsed=True, document_entries=30), settings), NOW)
    at = NOW
    for _ in range(16):  # four hours of polls
        at += 15 * MIN
        result = plan(state, ok(at, parsed=True, new_entries=2, document_entries=30), settings)
        state = state_of(result, at)
    assert entries_per_day(state, at, settings) == pytest.approx(8 * 24, rel=0.05)
    assert result.reason == "adaptive"
    assert 7 * MIN < result.next_poll_at - at < 8 * MIN  # one entry per poll: every 7.5 min

    # then it goes quiet: 304s for two days push the interval up towards the ceiling
    delays = []
    quiet_from = at
    while at < quiet_from + timedelta(days=2):
        at = result.next_poll_at
        result = plan(state, ok(at, status=304), settings)
        state = state_of(result, at)
        delays.append(result.next_poll_at - at)
    assert delays == sorted(delays) and delays[-1] > delays[0] * 4


def test_every_entry_new_means_the_window_overflowed_and_the_next_poll_comes_sooner() -> None:
    settings = ScheduleSettings(jitter=0)
    quiet = ScheduleState(rate_count=0.5, rate_since=NOW - timedelta(days=30), last_success_at=NOW - 6 * HOUR)
    normal = plan(quiet, ok(parsed=True, new_entries=3, document_entries=20), settings)
    flooded = plan(quiet, ok(parsed=True, new_entries=20, document_entries=20), settings)
    assert flooded.next_poll_at - NOW <= 3 * HOUR < normal.next_poll_at - NOW


def test_jitter_spreads_within_bounds() -> None:
    dates = [NOW - 2 * HOUR * i for i in range(20)]
    seen = ok(parsed=True, document_entries=20, entry_dates=dates)
    low = plan(ScheduleState(), seen, S, draw=0.0).next_poll_at - NOW
    mid = plan(ScheduleState(), seen, S, draw=0.5).next_poll_at - NOW
    high = plan(ScheduleState(), seen, S, draw=0.999).next_poll_at - NOW
    assert low == pytest.approx(mid * 0.9, rel=1e-6) and high == pytest.approx(mid * 1.1, rel=1e-3)


# -- publisher hints -----------------------------------------------------------------------------------


def test_ttl_and_max_age_are_minimums_capped_at_the_ceiling() -> None:
    busy = [NOW - MIN * i for i in range(50)]
    with_ttl = plan(ScheduleState(), ok(parsed=True, document_entries=50, entry_dates=busy, ttl_seconds=3600), S)
    assert with_ttl.next_poll_at - NOW == HOUR and with_ttl.reason == "ttl"
    # the hint is remembered: a later 304 (nothing parsed) still honours it
    later = plan(state_of(with_ttl, NOW), ok(NOW + HOUR, status=304), S)
    assert later.next_poll_at - (NOW + HOUR) >= HOUR and later.ttl_seconds == 3600

    cached = plan(ScheduleState(), ok(headers={"cache-control": "max-age=7200"}, status=304), S)
    assert cached.next_poll_at - NOW == 2 * HOUR and cached.reason == "max-age"

    absurd = plan(ScheduleState(), ok(parsed=True, ttl_seconds=365 * 86400), S)
    assert absurd.next_poll_at - NOW == S.ceiling


def test_a_short_hint_does_not_speed_a_feed_up() -> None:
    weekly = [NOW - timedelta(days=7 * i) for i in range(10)]
    result = plan(ScheduleState(), ok(parsed=True, entry_dates=weekly, ttl_seconds=60), S)
    assert result.next_poll_at - NOW == S.ceiling


# -- failures ------------------------------------------------------------------------------------------


def test_backoff_doubles_to_a_maximum_with_jitter() -> None:
    settings = ScheduleSettings(jitter=0)
    delays = [backoff_delay(n, settings, 0.5) for n in range(1, 12)]
    assert delays[:4] == [10 * MIN, 20 * MIN, 40 * MIN, 80 * MIN]
    assert delays[-1] == settings.backoff_max and max(delays) == settings.backoff_max
    assert backoff_delay(3, S, 0.0) == 40 * MIN * 0.9
    assert backoff_delay(3, S, 0.999) == pytest.approx(40 * MIN * 1.1, rel=1e-3)


def test_failures_back_off_but_never_poll_faster_than_the_healthy_interval() -> None:
    settings = ScheduleSettings(jitter=0)
    daily = ScheduleState(rate_count=1.0, rate_since=NOW - timedelta(days=60), last_success_at=NOW - HOUR)
    result = plan(daily, failed(status=500), settings)
    assert result.consecutive_failures == 1 and result.reason == "backoff"
    assert result.next_poll_at - NOW == settings.ceiling  # the feed's own ~7-day rhythm, capped
    fresh = plan(ScheduleState(), failed(status=500), settings)
    assert fresh.next_poll_at - NOW == settings.default_interval  # new feed: its default interval wins


def test_retry_after_on_429_and_503_is_honoured_and_capped() -> None:
    for status in (429, 503):
        result = plan(ScheduleState(), failed(status=status, headers={"retry-after": "7200"}), S)
        assert result.next_poll_at == NOW + 2 * HOUR == result.retry_after_until
        assert result.reason == "retry-after"
    huge = plan(ScheduleState(), failed(status=429, headers={"retry-after": str(10**8)}), S)
    assert huge.next_poll_at == NOW + S.retry_after_max
    # only 429/503 carry that meaning; and a short Retry-After does not undercut the back-off
    other = plan(ScheduleState(), failed(status=500, headers={"retry-after": "7200"}), S)
    assert other.retry_after_until is None and other.reason == "backoff"
    short = plan(
        ScheduleState(consecutive_failures=5), failed(status=503, headers={"retry-after": "1"}), S
    )
    assert short.next_poll_at - NOW > HOUR and short.reason == "backoff"


def test_parked_after_n_failures_or_at_once_on_410_and_unparked_by_a_success() -> None:
    settings = ScheduleSettings(park_after=3, jitter=0)
    state = ScheduleState()
    reasons = []
    for _ in range(3):
        result = plan(state, failed(status=500), settings)
        state = state_of(result, NOW)
        reasons.append(result.reason)
    assert reasons == ["backoff", "backoff", "parked"]
    assert result.parked and result.parked_since == NOW
    assert result.next_poll_at - NOW == settings.park_retry
    again = plan(state, failed(NOW + settings.park_retry), settings)
    assert again.parked_since == NOW and again.consecutive_failures == 4  # parked since the first time

    gone = plan(ScheduleState(), failed(status=410), settings)
    assert gone.parked and gone.reason == "parked"

    back = plan(state, ok(NOW + settings.park_retry, parsed=True, document_entries=3), settings)
    assert not back.parked and back.consecutive_failures == 0


def test_settings_are_validated() -> None:
    with pytest.raises(ScheduleConfigError, match="floor"):
        ScheduleSettings(floor=timedelta(hours=2), ceiling=HOUR)
    with pytest.raises(ScheduleConfigError, match="jitter"):
        ScheduleSettings(jitter=1.5)
    with pytest.raises(ScheduleConfigError, match="park_after"):
        ScheduleSettings(park_after=0)
    with pytest.raises(ScheduleConfigError, match="positive"):
        ScheduleSettings(backoff_base=timedelta(0))
