"""`run` without --once: a cycle that did nothing prints no summary line (one a minute is 1,440 a day)
unless -v; a cycle that polled, published or failed does, and so does one that could not complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from newswire.config import Settings
from newswire.pipeline import RunSummary


class _Stop(Exception):
    pass


@pytest.mark.parametrize("quiet", [True, False])
def test_idle_cycles_print_nothing_unless_verbose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet: bool
) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    from newswire.connectors.feedlist import FeedListError
    from newswire.connectors.kafka import BrokerUnavailable
    from newswire.flows import poll

    cycles: list[RunSummary | Exception] = [
        RunSummary(feeds_polled=4, published=16, feeds_failing=1),
        RunSummary(feeds_failing=1, feeds_parked=2),  # nothing due: store-wide health only
        RunSummary(feeds_polled=2, feeds_not_modified=2),
        RunSummary(),
        BrokerUnavailable("Kafka broker at 127.0.0.1:1 is unreachable"),
        FeedListError("feeds.txt:1: not an http(s) URL: 'half saved'"),  # an edit in progress: no exit 2
        RunSummary(feeds_polled=1, feeds_failed=1),
    ]

    def run_poll_flow(*args: object, **kwargs: object) -> RunSummary:
        if not cycles:
            raise _Stop
        item = cycles.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    monkeypatch.setattr(poll, "run_poll_flow", run_poll_flow)
    monkeypatch.setattr(poll.time, "sleep", lambda seconds: None)
    lines: list[str] = []
    with pytest.raises(_Stop):
        poll.poll_forever(tmp_path / "feeds.txt", Settings(state_dir=tmp_path), interval_minutes=15,
                          report=lines.append, quiet=quiet)
    heads = [line.split(";")[0] for line in lines]
    if quiet:
        assert heads == [
            "run: 4 feeds polled (0 not modified, 0 unchanged, 0 failed)",
            "run: 2 feeds polled (2 not modified, 0 unchanged, 0 failed)",
            "cycle not completed: Kafka broker at 127.0.0.1:1 is unreachable",
            "cycle not completed: feeds.txt:1: not an http(s) URL: 'half saved'",
            "run: 1 feeds polled (0 not modified, 0 unchanged, 1 failed)",
        ]
    else:
        assert len(lines) == 7 and heads[1] == heads[3] == "run: 0 feeds polled (0 not modified, 0 unchanged, 0 failed)"


@pytest.mark.usefixtures("restore_logging")  # the served cycle sets up newswire's logging
def test_a_served_cycle_that_fails_unexpectedly_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # in a flow run a Prefect server started, an internal error used to fail the run with nothing on the
    # terminal, every minute, while the service went on
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    from newswire.config import settings_to_params
    from newswire.flows import poll

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unexpected bug")

    monkeypatch.setattr(poll, "poll_batch", boom)  # the cycle's work, without starting Prefect
    monkeypatch.setenv(poll.SERVED_VERBOSITY, "0")
    feeds = tmp_path / "feeds.txt"
    feeds.write_text("http://127.0.0.1:9/feed.xml\n")
    with pytest.raises(RuntimeError, match="unexpected bug"):
        poll.poll.fn(str(feeds), settings_to_params(Settings(state_dir=tmp_path / "state")))
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out
    assert out[0].startswith("cycle failed: internal error: RuntimeError: unexpected bug (traceback in "), out
    assert "RuntimeError: unexpected bug" in (tmp_path / "state" / "newswire.log").read_text()


def test_a_sigterm_prefect_answers_with_exit_0_is_still_a_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prefect's runner exits 0 on SIGTERM while it is still starting: the caller must still exit 143
    import signal

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    from prefect.runner import Runner

    from newswire.flows import poll

    def serve(*args: object, **kwargs: object) -> None:
        Runner.handle_sigterm(Runner(), signal.SIGTERM, None)  # what the signal would run

    def prefect_handler(self: Runner, *args: object) -> None:
        raise SystemExit(0)

    monkeypatch.setattr(Runner, "handle_sigterm", prefect_handler)
    monkeypatch.setattr(poll.poll, "serve", serve)
    stopped = poll.serve_poll(tmp_path / "feeds.txt", Settings(state_dir=tmp_path), interval_minutes=15)
    assert stopped == signal.SIGTERM
    assert Runner.handle_sigterm is prefect_handler  # Prefect's own handler is put back


def test_a_served_run_tells_its_prefect_api_going_away_from_other_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What stops Prefect's runner when its server goes away ends a served `run` with exit status 3;
    anything else stays an internal error (or a user error) with its traceback in the log."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))  # importing the flow imports Prefect
    import httpx

    from newswire.flows.poll import api_went_away, why_api_went_away

    request = httpx.Request("GET", "http://127.0.0.1:1/api/deployments")

    def status(code: int) -> httpx.HTTPStatusError:
        return httpx.HTTPStatusError(str(code), request=request, response=httpx.Response(code, request=request))

    assert api_went_away(httpx.ConnectError("All connection attempts failed", request=request))
    assert api_went_away(status(503))  # a server shutting down
    assert api_went_away(RuntimeError("Service exceeded error threshold."))
    assert api_went_away(
        BaseExceptionGroup("runner", [httpx.ReadTimeout("t"), RuntimeError("Failed to reach API at http://x/api")])
    )
    # CI: the server stopped while the runner (re)applied its deployment; Prefect wraps the 503
    from prefect.deployments.runner import DeploymentApplyError

    def wrapped(cause: BaseException) -> DeploymentApplyError:
        try:
            raise DeploymentApplyError(f"Error while applying deployment: {cause}") from cause
        except DeploymentApplyError as exc:
            return exc

    assert api_went_away(wrapped(status(503)))
    assert why_api_went_away(wrapped(status(503))) == "it answered 503 Service Unavailable"
    assert not api_went_away(wrapped(status(500)))
    assert not api_went_away(wrapped(ValueError("a bug")))
    assert not api_went_away(status(404))
    assert not api_went_away(status(500))  # a server's bug, not its absence
    assert not api_went_away(RuntimeError("something else"))
    assert not api_went_away(BaseExceptionGroup("runner", [httpx.ConnectError("c"), ValueError("a bug")]))


def test_a_sigterm_is_still_143_when_the_server_is_gone_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A service manager stopping newswire and the Prefect server together: the runner took SIGTERM,
    then failed to pause its schedule on the way out. That is a stop (143), not a server gone (3)."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    import signal

    import httpx
    from prefect.runner import Runner

    from newswire.flows import poll

    def serve(*args: object, **kwargs: object) -> None:
        Runner.handle_sigterm(Runner(), signal.SIGTERM, None)  # what Prefect's signal handler calls
        request = httpx.Request("PATCH", "http://127.0.0.1:1/api/deployments/x")  # pausing the schedule
        raise httpx.ConnectError("All connection attempts failed", request=request)

    monkeypatch.setattr(Runner, "handle_sigterm", lambda self, *args: None)  # Prefect's own would exit
    monkeypatch.setattr(poll.poll, "serve", serve)
    assert poll.serve_poll(tmp_path / "feeds.txt", Settings(state_dir=tmp_path), interval_minutes=15) == signal.SIGTERM

    def serve_until_gone(*args: object, **kwargs: object) -> None:  # no signal: the server went away
        request = httpx.Request("PATCH", "http://127.0.0.1:1/api/deployments/x")
        raise httpx.ConnectError("All connection attempts failed", request=request)

    monkeypatch.setattr(poll.poll, "serve", serve_until_gone)
    with pytest.raises(poll.PrefectGone, match="ConnectError: All connection attempts failed"):
        poll.serve_poll(tmp_path / "feeds.txt", Settings(state_dir=tmp_path), interval_minutes=15)


def test_prefects_writes_go_to_the_log_and_a_failing_log_does_not_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The served flow run's sys.stderr is a stream into the log. When the log's own handler fails
    (disk full), logging reports that on sys.stderr: that report goes to the real stderr, once,
    instead of back into the log (which recursed until RecursionError)."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    import logging
    import sys

    from newswire.flows.poll import _ToLog

    kept: list[str] = []

    class Handler(logging.Handler):
        broken = False

        def emit(self, record: logging.LogRecord) -> None:  # as logging's file handler does
            try:
                if self.broken:
                    raise OSError("No space left on device")
                kept.append(record.getMessage())
            except Exception:  # noqa: BLE001 - logging.Handler.emit's own contract
                self.handleError(record)

    handler = Handler()
    logger = logging.getLogger("tests.to_log")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        stream = _ToLog(logger)
        stream.write("--- Error logging to API ---\nAll connection attempts failed")  # Prefect's two writes
        stream.flush()
        assert kept == ["--- Error logging to API ---", "All connection attempts failed"]
        handler.broken = True
        monkeypatch.setattr(sys, "stderr", stream)
        stream.write("a line the log cannot take\n")
        assert "--- Logging error ---" in capfd.readouterr().err
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize(
    ("interval", "said"),
    [(15.0, "every minute"), (1.0, "every minute"), (0.5, "every 30 s"), (0.05, "every 3 s"), (1e-9, "every 1 s")],
)
def test_the_start_line_says_how_often_the_run_looks_for_due_feeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interval: float, said: str
) -> None:
    """It said "every minute" whatever --interval was; a shorter interval is a shorter tick."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    from newswire.flows import poll

    assert poll.every(interval) == said
    assert poll.tick(interval).total_seconds() == max(1.0, min(60.0, interval * 60))  # at most once a second


@pytest.mark.parametrize(("raised", "status"), [("TerminationSignal", 143), ("KeyboardInterrupt", 130), (None, 3)])
def test_a_run_whose_temporary_api_is_gone_exits_by_the_signal_its_flow_run_saw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raised: str | None, status: int
) -> None:
    """A service manager signalling every process of the service stops the temporary API server with
    the run; Prefect's engine held SIGTERM during the flow run, and what left the run was the server's
    absence. The signal the flow's code saw decides the exit: 143 or 130; without one, the server was
    stopped by something else: exit 3 (unavailable)."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    import signal

    import httpx
    from prefect.exceptions import TerminationSignal

    from newswire.cli import _run
    from newswire.cli._common import Unavailable
    from newswire.flows import poll

    monkeypatch.setattr(poll, "_stopped_by", None)
    if raised is not None:
        with pytest.raises((TerminationSignal, KeyboardInterrupt)), poll._noting_stop_signal():
            raise TerminationSignal(signal.SIGTERM) if raised == "TerminationSignal" else KeyboardInterrupt

    def engine(*args: object, **kwargs: object) -> None:  # the crash report, after the signal, fails
        raise httpx.ConnectError("All connection attempts failed", request=httpx.Request("POST", "http://127.0.0.1:1"))

    monkeypatch.setattr(poll, "poll", engine)
    with pytest.raises(poll.PrefectGone) as gone:
        poll.run_poll_flow(tmp_path / "feeds.txt", Settings(state_dir=tmp_path), poll_all=False, interval_minutes=15)
    if status == 3:
        with pytest.raises(Unavailable, match="temporary API server stopped answering .*ConnectError"):
            _run._temporary_api_gone(gone.value)
    else:
        with pytest.raises(SystemExit) as exited:
            _run._temporary_api_gone(gone.value)
        assert exited.value.code == status
