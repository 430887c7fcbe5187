"""The run's one summary line: a run whose feeds fail says where the reasons are (the line only counts)."""

from __future__ import annotations

from newswire.pipeline import RunSummary

HINT = "(why they fail: newswire feeds status --failing)"


def test_a_run_with_failing_feeds_says_where_the_reasons_are() -> None:
    assert RunSummary(feeds_polled=4, feeds_failed=4, feeds_failing=4).line().endswith(HINT)
    # failing since earlier runs, none polled now (in backoff): still the same place to look
    assert RunSummary(feeds_failing=4).line().endswith(HINT)


def test_a_clean_run_and_a_replay_carry_no_hint() -> None:
    assert HINT not in RunSummary(feeds_polled=4, published=16).line()
    assert HINT not in RunSummary(feeds_failed=2).line(replay=True)  # a replay keeps no feed health
