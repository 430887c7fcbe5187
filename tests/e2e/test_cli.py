"""The `newswire` command as a user runs it: a real process, real broker, real local web, real Prefect."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from demo.webserver import RunningServer
from newswire.connectors.kafka import KafkaSettings
from newswire.devbroker import free_port
from newswire.processors.canonical import article_id
from tests.integration.pipeline_support import SAMPLE
from tests.support.cli import NEWSWIRE, newswire, one_line_error
from tests.support.combiners import write_china_combiner

pytestmark = pytest.mark.integration

def default_sigint() -> None:
    """Children get Ctrl-C's default action even where the tests run in the background (a shell
    without job control starts background jobs with SIGINT ignored, and Python then installs no
    KeyboardInterrupt handler)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_run_once_tail_and_feeds_status(
    feeds_file: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    common = ["--bootstrap-servers", kafka_settings.bootstrap_servers, "--topic-prefix", kafka_settings.topic_prefix]
    result = newswire("run", "--once", "--feeds", str(feeds_file), "--state-dir", str(state), "--allow-host", "127.0.0.1", *common)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("run: 4 feeds polled")
    assert "16 articles published (15 from pages, 1 from feeds)" in result.stdout
    assert result.stderr == ""  # quiet by default: nothing but the summary
    assert (state / "state.db").exists() and list((state / "archive").glob("*.warc.gz"))
    assert f"INFO newswire {result.stdout.strip()[:60]}" in (state / "newswire.log").read_text()  # the log has it too

    tail = newswire("tail", "china", "--from-beginning", "--timeout", "2", "--json", *common)
    assert tail.returncode == 0, tail.stderr
    china = [json.loads(line) for line in tail.stdout.splitlines()]
    assert china and all("china" in {t["slug"] for t in m["topics"]} for m in china)

    status = newswire("feeds", "status", "--json", "--state-dir", str(state))
    assert status.returncode == 0, status.stderr
    rows = {r["url"].rsplit("/", 1)[-1]: r for r in json.loads(status.stdout)}
    assert rows["broken.xml"]["consecutive_failures"] == 1 and "ill-formed" in rows["broken.xml"]["last_error"]
    assert rows["courier.xml"]["http_status"] == 200 and rows["courier.xml"]["entries_seen"] == 6
    # a health check: exit 1 while a feed is in trouble (the broken one), 0 for the healthy ones alone
    checked = newswire("feeds", "status", "--check", "--state-dir", str(state))
    assert checked.returncode == 1 and "broken.xml" in checked.stdout, checked.stderr
    healthy = tmp_path / "healthy.txt"
    healthy.write_text(rows["courier.xml"]["url"] + "\n")
    assert newswire("feeds", "status", "--check", "--feeds", str(healthy), "--state-dir", str(state)).returncode == 0


def test_verbose_runs_log_each_stages_decisions(
    sample_web: RunningServer, feeds_file: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """-v says which article fell back to its feed's text and why, what each feed held, which feeds
    were not modified; -vv adds every entry's fate. Without -v nothing of it (the first test above)."""
    common = [
        "--feeds", str(feeds_file), "--state-dir", str(tmp_path / "state"), "--allow-host", "127.0.0.1",
        "--bootstrap-servers", kafka_settings.bootstrap_servers, "--topic-prefix", kafka_settings.topic_prefix,
    ]  # fmt: skip
    first = newswire("run", "--once", "-v", *common)
    assert first.returncode == 0, first.stderr
    logged = first.stderr
    dead = sample_web.url("articles/kremlin-budget-analysis.html")
    assert f"INFO newswire.pipeline page failed url={dead} reason=http-404 text_source=feed" in logged, logged
    dispatch, courier = sample_web.url("feeds/dispatch.xml"), sample_web.url("feeds/courier.xml")
    # the drills article is in courier.xml first, then in dispatch.xml
    assert (f"feed entries url={dispatch} entries=7 new=6 already_published=0 duplicates=1 rejected=0") in logged
    assert f"feed entries url={courier} entries=6 new=6 already_published=0" in logged
    assert " DEBUG " not in logged and "Traceback" not in logged

    # courier.xml changed since: one entry more; the other feeds answer 304
    body = (SAMPLE / "feeds" / "courier.xml").read_bytes()
    item = (b"<item><title>Harbour fete</title><link>__BASE__/articles/harbour-fete.html</link>"
            b"<description>The harbour fete returns.</description></item>")
    sample_web.add_route("/feeds/courier.xml", body.replace(b"</channel>", item + b"</channel>"),
                         substitute=True, content_type="application/rss+xml")
    second = newswire("run", "--once", "--all", "-vv", *common)
    assert second.returncode == 0, second.stderr
    logged = second.stderr
    assert f"INFO newswire.live feed not modified url={dispatch} status=304" in logged, logged
    assert f"feed entries url={courier} entries=7 new=1 already_published=6 duplicates=0 rejected=0" in logged
    fete = sample_web.url("articles/harbour-fete.html")
    assert f"DEBUG newswire.live entry new id={article_id(fete)} url={fete} feed={courier}" in logged
    drills = sample_web.url("articles/joint-naval-drills.html")
    assert f"DEBUG newswire.live entry already-published id={article_id(drills)} url={drills}" in logged
    assert f"page failed url={fete} reason=http-404 text_source=feed" in logged
    assert f"DEBUG newswire.pipeline article tagged id={article_id(fete)} url={fete} text_source=feed" in logged


def test_environment_variables_configure_the_run(
    feeds_file: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    env = {
        "NEWSWIRE_FEEDS": str(feeds_file),
        "NEWSWIRE_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "NEWSWIRE_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "NEWSWIRE_STATE_DIR": str(tmp_path / "envstate"),
        "NEWSWIRE_ALLOW_HOSTS": "127.0.0.1",
    }
    result = newswire("run", "--once", env=env)
    assert result.returncode == 0, result.stderr
    assert "16 articles published" in result.stdout
    assert (tmp_path / "envstate" / "state.db").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("<opml><body><outline xmlUrl='http://a/feed'></body></opml>", "not well-formed"),
        ("http://ok.example/feed\nftp://bad.example/feed\n", ":2: not an http(s) URL"),
        ("# only a comment\n", "no feeds"),
    ],
)
def test_bad_feed_files_are_one_line_errors(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "feeds.txt"
    if content is not None:
        path.write_text(content)
    result = newswire("run", "--once", "--feeds", str(path), "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 2
    assert expected in one_line_error(result)


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--interval", "nan"], {}, "--interval must be a positive number"),
        (["--interval", "1e308"], {}, "at most"),
        (["--metrics-port", "99999"], {}, "--metrics-port"),
        (["--bootstrap-servers", "127.0.0.1:99999"], {}, "the port must be a number"),
        (["--state-url", "bogus://x"], {}, "only postgresql:// and sqlite:///"),
        ([], {"NEWSWIRE_MAX_FEED_BYTES": "-5"}, "NEWSWIRE_MAX_FEED_BYTES must be at least 1"),
        ([], {"NEWSWIRE_MAX_REDIRECTS": "-1"}, "NEWSWIRE_MAX_REDIRECTS must be at least 0"),
        ([], {"NEWSWIRE_POLL_FLOOR": "nan"}, "NEWSWIRE_POLL_FLOOR must be a positive number"),
        ([], {"NEWSWIRE_CONCURRENCY": "0"}, "NEWSWIRE_CONCURRENCY must be at least 1"),
    ],
)
def test_bad_values_are_user_errors_not_internal_ones(
    tmp_path: Path, feeds_file: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    result = newswire("run", "--once", "--feeds", str(feeds_file), "--state-dir", str(tmp_path / "s"), *args, env=env)
    assert result.returncode == 2, result.stderr
    assert expected in one_line_error(result)


def test_all_without_once_is_a_user_error_not_ignored(tmp_path: Path, feeds_file: Path) -> None:
    """A run that keeps polling polled only the feeds due and said nothing of --all."""
    result = newswire("run", "--all", "--feeds", str(feeds_file), "--state-dir", str(tmp_path / "s"), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "--all goes with --once" in one_line_error(result)
    # a scheduled run's log tells why it ended (it was empty on every exit 2 and 3)
    assert "ERROR newswire exit 2: --all goes with --once" in (tmp_path / "s" / "newswire.log").read_text()


def test_a_log_file_that_cannot_be_written_is_said_once(tmp_path: Path, feeds_file: Path) -> None:
    (tmp_path / "s" / "newswire.log").mkdir(parents=True)
    result = newswire("run", "--all", "--feeds", str(feeds_file), "--state-dir", str(tmp_path / "s"), timeout=60)
    assert result.returncode == 2
    warning, error = result.stderr.splitlines()
    log_file = tmp_path / "s" / "newswire.log"
    assert warning == f"newswire: warning: cannot write the log file {log_file}; logging to the terminal only"
    assert error.startswith("newswire: error: --all goes with --once")


def test_a_state_dir_that_is_a_file_and_a_file_that_is_no_warc_are_user_errors(tmp_path: Path) -> None:
    story = tmp_path / "story.txt"
    story.write_text("not an archive\n")
    upgrade = newswire("db", "upgrade", "--state-dir", str(story))
    assert upgrade.returncode == 2 and "is not a directory" in one_line_error(upgrade)
    for unmakeable in (story / "state", Path("/proc/newswire-state")):  # was exit 3, "unavailable"
        made = newswire("db", "upgrade", "--state-dir", str(unmakeable))
        assert made.returncode == 2 and f"cannot create {unmakeable}" in one_line_error(made), made.stderr
    # checked before the broker is: no broker listens on port 1
    replayed = newswire("replay", str(story), "--bootstrap-servers", "127.0.0.1:1", "--state-dir", str(tmp_path / "s"))
    assert replayed.returncode == 2 and one_line_error(replayed).endswith("story.txt: not a WARC file")


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_an_archive_dir_that_cannot_be_one_is_a_user_error(
    feeds_file: Path, kafka_settings: KafkaSettings, tmp_path: Path, where: str
) -> None:
    # It was an internal error (exit 70, FileExistsError) once the broker had been reached.
    story = tmp_path / "story.txt"
    story.write_text("not a directory\n")
    archive = story if where == "file" else story / "archive"
    result = newswire(
        "run", "--once", "--feeds", str(feeds_file), "--state-dir", str(tmp_path / "s"),
        "--archive-dir", str(archive), "--allow-host", "127.0.0.1",
        "--bootstrap-servers", kafka_settings.bootstrap_servers, "--topic-prefix", kafka_settings.topic_prefix,
    )  # fmt: skip
    assert result.returncode == 2
    assert one_line_error(result).startswith(f"newswire: error: archive dir {archive}: ")


@pytest.mark.parametrize("args", [["--max", "0"], ["--max", "-1"], ["--timeout", "-1"]])
def test_tail_rejects_counts_and_timeouts_below_their_range(args: list[str]) -> None:
    result = newswire("tail", "articles", "--bootstrap-servers", "127.0.0.1:1", *args)
    assert result.returncode == 2 and args[0] in one_line_error(result)


@pytest.mark.parametrize(
    ("topic", "prefix"), [("bad topic!", "news"), ("", "news"), ("articles", "bad prefix"), ("x" * 250, "news")]
)
def test_tail_of_a_name_that_cannot_be_a_topic_is_a_user_error(topic: str, prefix: str) -> None:
    # It waited for that topic to appear (forever without --timeout), then exited 0.
    result = newswire("tail", topic, "--topic-prefix", prefix, "--timeout", "1", "--bootstrap-servers", "127.0.0.1:1")
    assert result.returncode == 2 and "cannot be a Kafka topic" in one_line_error(result)


def test_extraction_libraries_stay_off_the_terminal(tmp_path: Path) -> None:
    empty = tmp_path / "empty.html"
    empty.write_text("<html><body></body></html>")
    result = newswire("tag", str(empty))
    assert result.returncode == 2
    assert "no article text found" in one_line_error(result)  # and no "WARNING trafilatura" line


def test_bad_options_and_taxonomy_are_one_line_errors(tmp_path: Path, feeds_file: Path) -> None:
    result = newswire("run", "--once", "--feeds", str(feeds_file), "--interval", "abc")
    assert result.returncode == 2 and "interval" in one_line_error(result)
    result = newswire("run", "--once", "--feeds", str(feeds_file), "--topic-prefix", "bad prefix!")
    assert result.returncode == 2 and "topic-prefix" in one_line_error(result)
    broken = tmp_path / "tax.yaml"
    broken.write_text("topics:\n  - slug: x\n    terms: [unclosed\n")
    result = newswire("run", "--once", "--feeds", str(feeds_file), "--taxonomy", str(broken), "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 2 and "tax.yaml" in one_line_error(result)


def test_unreachable_broker_is_a_one_line_error_and_marks_nothing(feeds_file: Path, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = newswire(
        "run", "--once", "--feeds", str(feeds_file), "--state-dir", str(tmp_path / "s"),
        "--bootstrap-servers", f"127.0.0.1:{port}", "--allow-host", "127.0.0.1",
    )  # fmt: skip
    assert result.returncode == 3
    assert "127.0.0.1" in one_line_error(result)


def test_run_once_as_a_prefect_flow_keeps_prefect_quiet(
    feeds_file: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    result = newswire(
        "run", "--once", "--prefect", "--feeds", str(feeds_file), "--state-dir", str(tmp_path / "state"),
        "--allow-host", "127.0.0.1", "--bootstrap-servers", kafka_settings.bootstrap_servers,
        "--topic-prefix", kafka_settings.topic_prefix,
        env={"PREFECT_HOME": str(tmp_path / "prefect-home")},
        timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "16 articles published" in result.stdout
    assert result.stderr == "", result.stderr  # no Prefect banner, no server logs, no tracebacks
    assert (tmp_path / "prefect-home").exists()  # Prefect kept out of ~/.prefect


def test_prefect_flow_failure_is_one_line(feeds_file: Path, tmp_path: Path) -> None:
    result = newswire(
        "run", "--once", "--prefect", "--feeds", str(feeds_file), "--state-dir", str(tmp_path / "state"),
        "--bootstrap-servers", f"127.0.0.1:{free_port()}",
        env={"PREFECT_HOME": str(tmp_path / "prefect-home")},
        timeout=240,
    )  # fmt: skip
    assert result.returncode == 3
    one_line_error(result)


def test_demo_runs(tmp_path: Path) -> None:
    """`make demo`'s driver: starts and stops what it needs, exits 0 with the table printed."""
    result = subprocess.run(
        [sys.executable, str(SAMPLE.parent / "demo.py")], capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "16 articles read back from Kafka" in result.stdout
    assert "civil-military" in result.stdout


def _start_run(
    feeds: Path, state: Path, kafka: KafkaSettings, env: dict[str, str], preexec: Callable[[], None]
) -> subprocess.Popen[str]:
    """`newswire run` (no --once) on the test broker, its output piped, started with ``preexec``."""
    return subprocess.Popen(
        [
            NEWSWIRE, "run", "--feeds", str(feeds), "--state-dir", str(state), "--allow-host", "127.0.0.1",
            "--bootstrap-servers", kafka.bootstrap_servers, "--topic-prefix", kafka.topic_prefix,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=preexec,  # noqa: PLW1509 -- the callers' preexec make plain system calls, no locks taken
    )  # fmt: skip


@pytest.mark.parametrize(("stop", "status"), [("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 143)])
def test_run_without_once_keeps_polling_through_prefect_until_interrupted(
    feeds_file: Path, kafka_settings: KafkaSettings, tmp_path: Path, read_all: Any, stop: str, status: int
) -> None:
    import signal
    import time

    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    env.pop("PREFECT_API_URL", None)  # no server: newswire runs the flow itself every minute
    process = _start_run(feeds_file, tmp_path / "state", kafka_settings, env, default_sigint)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # the first cycle's summary line
        assert "16 articles published" in first, first
        time.sleep(0.5)
    finally:
        process.send_signal(getattr(signal, stop))
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == status
    assert "Traceback" not in stderr and "error" not in stderr, stderr
    assert len(read_all(kafka_settings, kafka_settings.topic("articles"), expected=16)) == 16


def test_run_without_once_serves_its_own_metrics_and_removes_their_files(
    feeds_file: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Without a Prefect server the cycles run in the CLI's own process: its samples must reach the
    endpoint (they were counted in a registry the endpoint does not read: /metrics showed no newswire
    family), and the samples' directory goes when the run ends."""
    import signal
    import time
    import urllib.request

    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    env.pop("PREFECT_API_URL", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    port = free_port()
    process = subprocess.Popen(
        [
            NEWSWIRE, "run", "--feeds", str(feeds_file), "--state-dir", str(tmp_path / "state"),
            "--allow-host", "127.0.0.1", "--bootstrap-servers", kafka_settings.bootstrap_servers,
            "--topic-prefix", kafka_settings.topic_prefix, "--metrics-port", str(port),
            "--metrics-addr", "127.0.0.1",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=default_sigint,  # noqa: PLW1509 -- one signal() call, no locks taken
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "16 articles published" in first, first
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
        with direct.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            scraped = response.read().decode()
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "newswire_articles_published_total 16.0" in scraped, scraped
    assert 'newswire_polls_total{outcome="200"} 3.0' in scraped, scraped
    # an alert can tell a broker outage from a quiet news day
    assert 'newswire_cycles_total{outcome="completed"} 1.0' in scraped, scraped
    (stamp,) = [line for line in scraped.splitlines() if line.startswith("newswire_last_completed_cycle_timestamp")]
    assert abs(float(stamp.split()[-1]) - time.time()) < 300, stamp
    assert not list((tmp_path / "state" / "metrics").glob("*/*.db"))


@contextlib.contextmanager
def prefect_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real `prefect server` on a loopback port: its API URL and process (stopped on the way out)."""
    import time
    import urllib.request

    port = free_port()
    server_env = {**os.environ, "PREFECT_HOME": str(tmp_path / "server-home"), "DO_NOT_TRACK": "1",
                  "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip
    server_env.pop("PREFECT_API_URL", None)
    prefect = str(Path(sys.executable).with_name("prefect"))
    server = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=server_env,
    )  # fmt: skip
    api = f"http://127.0.0.1:{port}/api"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with direct.open(f"{api}/health", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the Prefect server did not start"
                time.sleep(1)
        yield api, server
    finally:
        server.terminate()
        server.wait(timeout=60)


def serve_run(feeds_file: Path, tmp_path: Path, api: str, **env: str) -> subprocess.Popen[str]:
    """`newswire run` serving the poll flow to ``api``; no broker listens, so every cycle fails."""
    state = tmp_path / "state"
    return subprocess.Popen(
        [
            NEWSWIRE, "run", "--feeds", str(feeds_file), "--state-dir", str(state), "--allow-host", "127.0.0.1",
            "--bootstrap-servers", f"127.0.0.1:{free_port()}",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "prefect-home"), **env},
        preexec_fn=default_sigint,  # noqa: PLW1509 -- one signal() call, no locks taken
    )  # fmt: skip


def first_cycle_line(process: subprocess.Popen[str]) -> str:
    import select

    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 150)  # the first scheduled run
    assert ready, "no cycle reported"
    return process.stdout.readline()


def test_run_serving_a_prefect_server_reports_cycles_in_one_line_and_exits_143_on_sigterm(
    feeds_file: Path, tmp_path: Path
) -> None:
    """With PREFECT_API_URL, `run` serves the flow and Prefect's runner starts each run in a child
    process: a cycle that cannot complete is one line (Prefect printed two tracebacks), the traceback
    goes to the log file, and SIGTERM exits 143 (Prefect's runner took the signal and newswire exited 0,
    also on Ctrl-C)."""
    import signal

    with prefect_server(tmp_path) as (api, _):
        process = serve_run(feeds_file, tmp_path, api)
        try:
            line = first_cycle_line(process)
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
    assert line.startswith("cycle not completed: Kafka broker at 127.0.0.1:"), line
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr and "ERROR" not in stderr, stderr
    assert all(ln.startswith("newswire: serving") for ln in stderr.splitlines() if ln.strip()), stderr
    assert "BrokerUnavailable" in (tmp_path / "state" / "newswire.log").read_text()


def test_run_serving_a_prefect_server_that_goes_away_exits_3_in_one_line(feeds_file: Path, tmp_path: Path) -> None:
    """The Prefect server stops: Prefect's runner gives up after its retries (here cut short) and
    printed its errors with tracebacks on stdout, and newswire exited 70 with an internal error
    (the runner's ConnectError pausing the schedule on its way out). Now: exit 3, one line, the
    runner's words in the log file."""
    with prefect_server(tmp_path) as (api, server):
        # Prefect's own settings: no client retries, a poll every 2 s, so the runner gives up in seconds
        process = serve_run(
            feeds_file, tmp_path, api, PREFECT_CLIENT_MAX_RETRIES="0", PREFECT_RUNNER_POLL_FREQUENCY="2"
        )
        try:
            first_cycle_line(process)  # the runner is serving
            server.terminate()
            server.wait(timeout=60)
            stdout, stderr = process.communicate(timeout=180)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 3, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("newswire: serving")]
    assert len(lines) == 1 and lines[0].startswith(f"newswire: error: Prefect API at {api} is unreachable (it "
                                                   "stopped answering: "), stderr  # fmt: skip
    assert "Traceback" not in stdout + stderr and "Failed the last" not in stdout, stdout
    assert "Prefect's runner stopped: its API stopped answering" in (tmp_path / "state" / "newswire.log").read_text()


# -- tag and taxonomy: what an analyst editing the taxonomy runs ---------------------------------------


def test_tag_explains_a_text_from_stdin_and_a_page(tmp_path: Path) -> None:
    full_env = {**os.environ}
    result = subprocess.run(
        [NEWSWIRE, "tag", "--all"],
        input="Kremlin rejects new sanctions\nRussia said on Monday that Putin would respond.\n",
        capture_output=True, text=True, timeout=120, env=full_env, check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("taxonomy builtin-")
    russia = next(line for line in lines if line.startswith("russia"))
    assert "TAGGED" in russia and "combiner" in russia
    assert any(line.strip().startswith("matched:") and "kremlin 1" in line for line in lines)
    assert any(line.startswith("china") and "no kept match" in line for line in lines)

    page = newswire("tag", str(SAMPLE / "articles" / "kabul-airlift.html"), "--json")
    assert page.returncode == 0, page.stderr
    data = json.loads(page.stdout)
    assert data["topics"] == ["afghanistan"]
    assert {s["slug"] for s in data["scores"]} == {"afghanistan", "china", "civil-military", "russia"}


def test_taxonomy_copy_edit_check_and_tag(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    copied = newswire("taxonomy", "copy", str(mine))
    assert copied.returncode == 0, copied.stderr
    assert sorted(p.name for p in mine.glob("*.yaml")) == [
        "afghanistan.yaml", "china.yaml", "civil-military.yaml", "russia.yaml"
    ]
    again = newswire("taxonomy", "copy", str(mine))
    assert again.returncode == 2 and "exists (--force overwrites)" in one_line_error(again)

    check = newswire("taxonomy", "check", str(mine))
    assert check.returncode == 0, check.stderr
    assert check.stdout.splitlines()[0].endswith(": 4 topics")
    assert check.stdout.splitlines()[0].split("-")[-1].split(":")[0] == (
        newswire("taxonomy", "check").stdout.splitlines()[0].split("-")[-1].split(":")[0]
    )  # same content, same version hash

    # A user's own topic, added beside the copies, tags from then on.
    (mine / "danube.yaml").write_text("slug: danube\nterms:\n  - match: [danube, donau]\n    weight: 6\n")
    text = tmp_path / "item.txt"
    text.write_text("Danube floods\nThe Donau rose again.\n")
    tagged = newswire("tag", str(text), "--taxonomy", str(mine), "--json")
    assert tagged.returncode == 0, tagged.stderr
    assert json.loads(tagged.stdout)["topics"] == ["danube"]
    # A topic added beside the built-in ones keeps a China embedding combiner (the extra; made-up
    # weights stamped for the shipped taxonomy) usable; an edit of a topic it reads does not, and check
    # says so.
    extra = {"NEWSWIRE_EMBEDDINGS": str(write_china_combiner(tmp_path / "combiners"))}
    added = newswire("taxonomy", "check", str(mine), env=extra)
    assert "embeddings extra: china has an embedding combiner that fits" in added.stdout, added.stdout
    russia = mine / "russia.yaml"
    russia.write_text(russia.read_text(encoding="utf-8").replace("threshold: 0.5", "threshold: 0.55", 1))
    edited = newswire("taxonomy", "check", str(mine), env=extra)
    assert edited.returncode == 0, edited.stderr
    assert "china's embedding combiner is not used: the topics it reads" in edited.stdout, edited.stdout
    bad_dir = newswire("taxonomy", "check", str(mine), env={"NEWSWIRE_EMBEDDINGS": str(tmp_path / "none")})
    assert bad_dir.returncode == 2
    assert one_line_error(bad_dir).endswith("none: not a directory of embedding combiners")

    (mine / "danube.yaml").write_text("slug: danube\nterms:\n  - match: [danube]\n    weight: heavy\n")
    broken = newswire("taxonomy", "check", str(mine))
    assert broken.returncode == 2
    assert one_line_error(broken).endswith("danube.yaml:4: weight must be a number, got 'heavy'")
    broken_tag = newswire("tag", str(text), "--taxonomy", str(mine))
    assert broken_tag.returncode == 2 and "danube.yaml:4:" in one_line_error(broken_tag)


def test_a_copied_taxonomy_kept_in_part_still_checks(tmp_path: Path) -> None:
    """One file of a copy, or a copy without a topic: a learned model reading the missing topics is set
    aside with a warning naming the line of its feature, and the topic keeps its terms."""
    mine = tmp_path / "mine"
    assert newswire("taxonomy", "copy", str(mine)).returncode == 0
    china = mine / "china.yaml"
    text = china.read_text("utf-8")
    if "other:afghanistan:" not in text:  # the shipped model reads afghanistan; make sure this copy's does
        assert "\n  weights:\n" in text
        china.write_text(text.replace("\n  weights:\n", "\n  weights:\n    other:afghanistan: 0.1\n", 1), "utf-8")
    others = [n for n, line in enumerate(china.read_text("utf-8").splitlines(), 1) if line.strip().startswith("other:")]
    alone = newswire("taxonomy", "check", str(china))
    assert alone.returncode == 0, alone.stderr
    assert "Traceback" not in alone.stderr
    assert "china" in alone.stdout.splitlines()[1]
    assert ", plain  [" in alone.stdout.splitlines()[1]  # scored without its model
    (warning,) = alone.stderr.splitlines()
    assert f" WARNING newswire.processors.taxonomy {china}:{others[0]}: model feature 'other:" in warning
    assert "falls back to the plain score r/(r+6)" in warning and "eval/train_combiner.py --write" in warning

    strict = newswire("taxonomy", "check", "--strict", str(china))  # for a CI that wants no surprises
    assert strict.returncode == 2, strict.stderr
    warned, failed = strict.stderr.splitlines()
    assert "model feature 'other:" in warned and failed == "newswire: error: --strict: the taxonomy loaded with 1 warning (above)"
    assert newswire("taxonomy", "check", "--strict", str(mine)).returncode == 0  # the whole copy fits

    (mine / "afghanistan.yaml").unlink()
    dropped = newswire("taxonomy", "check", str(mine))
    assert dropped.returncode == 0, dropped.stderr
    assert dropped.stdout.splitlines()[0].endswith(": 3 topics")
    assert "model feature 'other:afghanistan' names no topic of this taxonomy" in dropped.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"slug: x\n\x1bterms: [a]\n", "x.yaml:2: YAML error: control character U+001B (column 1) is not allowed"),
        (b"slug: x\nterms: " + b"[" * 5000 + b"\n", "x.yaml:2: YAML error: nested more than 64 levels deep"),
        (b"slug: x\nthreshold: 1\nterms: [a]\n", "x.yaml:2: threshold must be in (0, 1), got 1"),
        (b'slug: x\nterms:\n  - match: a\n    weight: "3"\n', "x.yaml:4: weight must be a number, got the string '3' (remove the quotes)"),
        (b"slug: x\nterms:\n  - match: a\n    weight: 1e400\n", "x.yaml:4: weight must be in (0, 100], got 1e400"),
        (b"slug:\nterms: [a]\n", "x.yaml:1: slug is empty"),
        (b"slug: x\nterms: [caf\xe9]\n", "x.yaml:2: not UTF-8 text"),
    ],
)
def test_taxonomy_mistakes_are_one_line_with_their_line(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(content)
    result = newswire("taxonomy", "check", str(path))
    assert result.returncode == 2, result.stderr
    assert expected in one_line_error(result)


def test_taxonomy_eval_measures_labelled_items(tmp_path: Path) -> None:
    items = tmp_path / "mine.jsonl"
    items.write_text(
        "\n".join(
            json.dumps(obj)
            for obj in (
                {"id": "kremlin", "title": "Kremlin rejects talks", "topics": {"russia": 2},
                 "text": "The Kremlin said Russia would not negotiate while sanctions remain, Putin's spokesman said."},
                {"id": "idaho", "title": "Moscow, Idaho, trial opens", "topics": [], "traps": ["russia"],
                 "text": "The trial over the killings of four students in Moscow, Idaho, opened on Monday."},
                {"id": "coffee", "title": "Coffee prices rise", "topics": ["china"], "text": "Harvest worries."},
            )
        )
        + "\n",
        encoding="utf-8",
    )
    result = newswire("taxonomy", "eval", str(items), "--json", "--errors", "--sweep")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["items"] == 3 and report["taxonomy"].startswith("builtin-")
    assert (report["topics"]["russia"]["tp"], report["topics"]["russia"]["traps_tagged"]) == (1, 0)
    assert report["topics"]["china"]["fn"] == 1
    assert [(m["topic"], m["item"], m["kind"]) for m in report["mistakes"]] == [("china", "coffee", "missed")]
    (at_threshold,) = [row for row in report["sweep"]["russia"] if row["threshold"] == 0.5]
    assert at_threshold["f1"] == report["topics"]["russia"]["f1"] == 1.0
    table = newswire("taxonomy", "eval", str(items), "--errors")
    assert table.returncode == 0 and "china: missed (grade 1), score 0.00: coffee" in table.stdout

    items.write_text('{"text": "x", "topics": {"iran": 1}}\n', encoding="utf-8")
    bad = newswire("taxonomy", "eval", str(items))
    assert bad.returncode == 2 and "mine.jsonl:1: topic 'iran' is not in the taxonomy" in one_line_error(bad)


def test_tag_bad_input_is_one_line(tmp_path: Path) -> None:
    missing = newswire("tag", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and "cannot read" in one_line_error(missing)
    address = newswire("tag", "http://127.0.0.1:9/page.html")  # read as a file name: "No such file"
    assert address.returncode == 2 and "reads a file or stdin, not an address" in one_line_error(address)
    binary = tmp_path / "x.bin"
    binary.write_bytes(b"\xff\xfe\x00garbage\x80")
    result = newswire("tag", str(binary))
    assert result.returncode == 2 and "neither UTF-8 text nor an HTML page" in one_line_error(result)
    empty_page = tmp_path / "empty.html"
    empty_page.write_text("<!doctype html><html><body><nav>Home</nav></body></html>")
    result = newswire("tag", str(empty_page))
    assert result.returncode == 2 and "no article text found" in one_line_error(result)



def test_tag_a_headline_typed_at_a_terminal_and_an_html_fragment_by_its_name(tmp_path: Path) -> None:
    import pty

    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    leader, follower = pty.openpty()  # stdin a terminal, as when a user types the command
    try:
        run = subprocess.run([NEWSWIRE, "tag", "--title", "Putin meets Xi", "--lead", "Kremlin talks"],
                             stdin=follower, capture_output=True, text=True, timeout=120, env=env, check=False)
        bare = subprocess.run([NEWSWIRE, "tag"], stdin=follower, capture_output=True, text=True, timeout=120,
                              env=env, check=False)
    finally:
        os.close(leader)
        os.close(follower)
    assert run.returncode == 0, run.stderr
    assert any(line.startswith("russia") and "TAGGED" in line for line in run.stdout.splitlines()), run.stdout
    assert bare.returncode == 2 and "--title/--lead" in one_line_error(bare)
    # an .html file is a page even when it is only a fragment (no <html> or <body>)
    page = tmp_path / "frag.html"
    page.write_text('<h1>Kremlin rejects talks</h1><p data-section="beijing-bureau">The Kremlin said on Monday '
                    "that Russia would not join the talks, a spokesman told reporters in Moscow.</p>")
    result = newswire("tag", str(page), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["topics"] == ["russia"]  # read as text, the markup would say Beijing

# -- the environment a user brings: metrics dir, Prefect API, foreign databases, log file, help ----------


@pytest.mark.parametrize(("kind", "expected"), [("missing", "does not exist"), ("file", "is not a directory")])
def test_a_prometheus_multiproc_dir_that_is_no_directory_is_a_user_error(
    feeds_file: Path, tmp_path: Path, kind: str, expected: str
) -> None:
    shared = tmp_path / "metrics"
    if kind == "file":
        shared.write_text("")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared), "NEWSWIRE_STATE_DIR": str(tmp_path / "s")}
    # checked before any work: no broker listens on port 1, and that would be exit status 3
    run = newswire("run", "--once", "--feeds", str(feeds_file), "--bootstrap-servers", "127.0.0.1:1", env=env)
    assert run.returncode == 2, run.stderr
    assert f"PROMETHEUS_MULTIPROC_DIR={shared}" in one_line_error(run) and expected in run.stderr
    served = newswire("metrics", "serve", "--port", "0", "--metrics-addr", "127.0.0.1", env=env)
    assert served.returncode == 2, served.stderr
    assert expected in one_line_error(served) and "set PROMETHEUS_MULTIPROC_DIR to" not in served.stderr


@pytest.mark.parametrize(
    ("flag", "addr"), [("--addr", "127.0.0.1"), ("--addr", "::1"), ("--metrics-addr", "127.0.0.1")]
)  # --metrics-addr: the spelling `run` uses works here too
def test_metrics_serve_prints_the_port_it_bound_and_a_url_that_works(tmp_path: Path, flag: str, addr: str) -> None:
    import re
    import socket
    import urllib.request

    if ":" in addr:
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind((addr, 0))
        except OSError:
            pytest.skip("no IPv6 loopback here")
    shared = tmp_path / "metrics"
    shared.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared), "NEWSWIRE_STATE_DIR": str(tmp_path / "s")}
    process = subprocess.Popen(
        [NEWSWIRE, "metrics", "serve", "--port", "0", flag, addr],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        found = re.search(r"on (http://\S+/metrics) ", line)
        assert found, line
        url = found.group(1)
        shown_host = f"[{addr}]" if ":" in addr else addr
        assert url.startswith(f"http://{shown_host}:") and not url.endswith(":0/metrics"), url
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
        with direct.open(url, timeout=10) as response:
            assert b"newswire_" in response.read()
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_an_unreachable_prefect_api_is_exit_3_and_says_how_to_run_without_it(
    feeds_file: Path, tmp_path: Path
) -> None:
    api = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    env = {"PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    common = ["--feeds", str(feeds_file), "--state-dir", str(tmp_path / "s"), "--bootstrap-servers", "127.0.0.1:1"]
    once = newswire("run", "--once", *common, env=env, timeout=120)
    assert once.returncode == 3, once.stderr
    line = one_line_error(once)
    assert api in line and "--no-prefect" in line and "unset PREFECT_API_URL" in line
    keeps_polling = newswire("run", *common, env=env, timeout=120)
    assert keeps_polling.returncode == 3, keeps_polling.stderr
    assert api in one_line_error(keeps_polling) and "unset PREFECT_API_URL" in keeps_polling.stderr



def test_a_prefect_api_url_that_cannot_work_is_exit_2(feeds_file: Path, tmp_path: Path) -> None:
    # No scheme, or a web server that is no Prefect API: waiting will not help, so it is a usage error.
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    common = ["--feeds", str(feeds_file), "--state-dir", str(tmp_path / "s"), "--bootstrap-servers", "127.0.0.1:1"]
    try:
        for api, says in ((f"127.0.0.1:{free_port()}/api", "not a valid http(s) URL"),
                          (f"http://127.0.0.1:{server.server_address[1]}/api", "answered 404")):
            env = {"PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "prefect-home")}
            result = newswire("run", "--once", *common, env=env, timeout=120)
            assert result.returncode == 2, result.stderr
            assert api in one_line_error(result) and says in result.stderr
    finally:
        server.shutdown()
        server.server_close()

def test_db_upgrade_refuses_a_database_that_is_not_newswires(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    state = ["--state-dir", str(tmp_path / "s")]
    refused = newswire("db", "upgrade", "--state-url", f"sqlite:///{other}", *state)
    assert refused.returncode == 2, refused.stderr
    assert "is not a newswire state store" in one_line_error(refused) and "notes" in refused.stderr
    with sqlite3.connect(other) as db:  # left as it was
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert tables == ["notes"] and db.execute("PRAGMA user_version").fetchone()[0] == 0

    text = tmp_path / "notes.txt"
    text.write_text("not a database at all\n" * 100)
    not_sqlite = newswire("db", "upgrade", "--state-url", f"sqlite:///{text}", *state)
    assert not_sqlite.returncode == 2, not_sqlite.stderr
    assert "is not an SQLite database" in one_line_error(not_sqlite)

    fresh = tmp_path / "fresh.db"
    fresh.touch()  # an empty file is an empty database
    created = newswire("db", "upgrade", "--state-url", f"sqlite:///{fresh}", *state)
    assert created.returncode == 0, created.stderr
    again = newswire("db", "upgrade", "--state-url", f"sqlite:///{fresh}", *state)
    assert again.returncode == 0 and "(0 migrations applied)" in again.stdout


def test_every_command_logs_to_the_state_dir_of_the_environment(tmp_path: Path) -> None:
    state = tmp_path / "state"
    elsewhere = tmp_path / "xdg"  # where the user's data dir would be
    env = {"NEWSWIRE_STATE_DIR": str(state), "XDG_DATA_HOME": str(elsewhere)}
    text = tmp_path / "story.txt"
    text.write_text("Kremlin rejects talks\nRussia said no.\n")
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"text": "Putin and the Kremlin.", "title": "x", "topics": ["russia"]}) + "\n")
    commands = [
        ["tag", str(text)],
        ["taxonomy", "check"],
        ["taxonomy", "eval", str(items)],
        ["taxonomy", "copy", str(tmp_path / "copy")],
        ["tail", "articles", "--bootstrap-servers", f"127.0.0.1:{free_port()}", "--timeout", "0"],
        ["metrics", "serve", "--port", "0"],  # no PROMETHEUS_MULTIPROC_DIR: a one-line error, logged
        ["feeds", "import", str(text), "--feeds", str(tmp_path / "feeds.txt")],
        ["feeds", "discover", "ftp://example.invalid/"],
    ]
    clean = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    for command in commands:
        log = state / "newswire.log"
        log.unlink(missing_ok=True)
        result = subprocess.run(
            [NEWSWIRE, *command], capture_output=True, text=True, timeout=120, env={**clean, **env}, check=False
        )
        assert "Traceback" not in result.stderr, result.stderr
        assert log.exists(), (command, result.stderr)
    assert not (elsewhere / "newswire" / "newswire.log").exists()


def test_library_warnings_go_to_the_log_file_unless_verbose(tmp_path: Path) -> None:
    state = tmp_path / "state"
    url = f"sqlite:///{tmp_path / 'x.db'}?mode=ro"  # SQLAlchemy warns: pysqlite ignores the argument
    quiet = newswire("db", "upgrade", "--state-url", url, "--state-dir", str(state))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "", quiet.stderr
    assert "SAWarning" in (state / "newswire.log").read_text()
    verbose = newswire("db", "upgrade", "--state-url", url, "--state-dir", str(state), "-v")
    assert verbose.returncode == 0 and "are not accepted by the pysqlite driver" in verbose.stderr


def test_verbose_is_shown_as_a_repeatable_flag_not_a_value(tmp_path: Path) -> None:
    for args in (["--help"], ["tag", "--help"], ["run", "--help"]):
        shown = newswire(*args, env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
        assert shown.returncode == 0, shown.stderr
        (row,) = [line for line in shown.stdout.splitlines() if "--verbose" in line]
        assert "<int>" not in row and "-vv" in row and "default" not in row, row


def test_a_mistyped_state_dir_for_a_reading_command_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "no" / "such" / "state"
    feeds = tmp_path / "feeds.txt"
    feeds.write_text("http://127.0.0.1:9/feed.xml\n")
    status = newswire("feeds", "status", "--state-dir", str(typo))
    assert status.returncode == 2, status.stderr
    assert "no state store in" in one_line_error(status)
    exported = newswire("feeds", "export", "--feeds", str(feeds), "--state-dir", str(typo))
    assert exported.returncode == 0, exported.stderr
    assert "http://127.0.0.1:9/feed.xml" in exported.stdout
    # with the feed list, before any run: every listed feed is new (it said "no state store")
    listed = newswire("feeds", "status", "--feeds", str(feeds), "--json", "--state-dir", str(typo))
    assert listed.returncode == 0, listed.stderr
    assert [(row["url"], row["state"]) for row in json.loads(listed.stdout)] == [("http://127.0.0.1:9/feed.xml", "new")]
    assert not (tmp_path / "no").exists()  # no directory, no newswire.log under the typo


def _temporary_servers(prefect_home: Path) -> list[int]:
    """Pids of Prefect temporary API servers started with this PREFECT_HOME (found by their environment)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"prefect.server.api.server:create_app" in cmdline and f"PREFECT_HOME={prefect_home}".encode() in environ:
            found.append(int(proc.name))
    return found


@pytest.mark.parametrize(("stop", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_to_the_whole_process_group_mid_cycle_stops_the_run_promptly(
    kafka_settings: KafkaSettings, tmp_path: Path, stop: str, status: int
) -> None:
    """Ctrl-C at a terminal signals the whole foreground process group, Prefect's temporary API server
    included when Prefect starts it. The run must still report its interrupted flow run to that server,
    exit 130/143 promptly with nothing on stderr but its start line, and leave no server behind."""
    import http.server
    import signal
    import threading
    import time

    asked = threading.Event()

    class SlowFeed(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.set()
            time.sleep(20)  # the signal arrives while the cycle waits for this feed
            body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>slow</title></channel></rss>'
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowFeed)
    web.daemon_threads = True
    threading.Thread(target=web.serve_forever, daemon=True).start()
    feeds = tmp_path / "feeds.txt"
    feeds.write_text(f"http://127.0.0.1:{web.server_address[1]}/feed.xml\n")
    home = tmp_path / "prefect-home"
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)

    def own_group_default_sigint() -> None:
        default_sigint()
        os.setpgrp()  # a job of its own, as a shell with job control starts it

    process = _start_run(feeds, tmp_path / "state", kafka_settings, env, own_group_default_sigint)
    try:
        assert asked.wait(timeout=180), "the run never asked for the feed"
        time.sleep(1.0)
        assert _temporary_servers(home), "no temporary API server is running"
        stopped_at = time.monotonic()
        os.killpg(process.pid, getattr(signal, stop))
        stdout, stderr = process.communicate(timeout=120)
        took = time.monotonic() - stopped_at
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        web.shutdown()
    assert process.returncode == status, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("newswire: polling 1 feeds"), stderr
    assert stdout == ""
    assert took < 30, f"took {took:.1f} s to stop"  # it was ~75 s, reporting to a server stopped with it
    deadline = time.monotonic() + 10
    while _temporary_servers(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _temporary_servers(home) == []


def test_a_killed_run_leaves_no_temporary_api_server_behind(
    feeds_file: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Prefect stops its temporary API server from an exit hook, which SIGKILL (the OOM killer) never
    runs: the server stayed up, holding its memory and port, and each restarted run added another."""
    import signal
    import time

    home = tmp_path / "prefect-home"
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    process = _start_run(feeds_file, tmp_path / "state", kafka_settings, env, default_sigint)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # a cycle ran: the server is up
        assert "16 articles published" in first, first
        assert _temporary_servers(home), "no temporary API server is running"
        process.kill()
        process.communicate(timeout=30)
        deadline = time.monotonic() + 15
        while _temporary_servers(home) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _temporary_servers(home)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        for pid in _temporary_servers(home):  # leave nothing running should the assertion fail
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    assert left == [], f"temporary API server(s) {left} outlived the killed run"


def test_times_and_names_out_of_range_are_user_errors(tmp_path: Path) -> None:
    """Each was an internal error (exit 70): a time that leaves the calendar in UTC, a topic prefix or
    a slug whose Kafka topic name passes 249 characters. Checked before the broker (none on port 1)."""
    archive = tmp_path / "a.warc"
    archive.write_bytes(b"")
    common = ("--bootstrap-servers", "127.0.0.1:1", "--state-dir", str(tmp_path / "s"))
    for option, value in (("--since", "0001-01-01T00:00+01:00"), ("--until", "9999-12-31T23:59-01:00")):
        result = newswire("replay", str(archive), option, value, *common)
        assert result.returncode == 2 and "is out of range" in one_line_error(result), result.stderr
    long_prefix = newswire("replay", str(archive), "--topic-prefix", "p" * 239, *common)
    assert long_prefix.returncode == 2 and "at most 238" in one_line_error(long_prefix)
    lower_z = newswire("replay", str(archive), "--since", "2021-09-30T02:20:52z", *common)
    assert "ISO 8601" not in lower_z.stderr  # ISO 8601 allows a lower-case z


def test_commands_that_read_the_state_never_create_a_store_a_url_names(tmp_path: Path, feeds_file: Path) -> None:
    """`replay --skip-published --state-url sqlite:///typo` created an empty store, skipped nothing
    and published the whole archive again; `feeds status` and `feeds export` created one too."""
    import io

    from warcio.warcwriter import WARCWriter

    url = f"sqlite:///{tmp_path / 'typo' / 'state.db'}"
    archive = tmp_path / "a.warc.gz"
    with archive.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        writer.write_record(writer.create_warc_record("http://a.test/", "resource", payload=io.BytesIO(b"x")))
    replayed = newswire("replay", str(archive), "--skip-published", "--state-url", url, "--bootstrap-servers", "127.0.0.1:1")
    assert replayed.returncode == 2
    assert f"no state store at {tmp_path / 'typo' / 'state.db'}" in one_line_error(replayed)
    status = newswire("feeds", "status", "--state-url", url)
    assert status.returncode == 2 and "no state store at" in one_line_error(status)
    exported = newswire("feeds", "export", "--feeds", str(feeds_file), "--state-url", url)
    assert exported.returncode == 0, exported.stderr
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("command", ["run", "replay"])
def test_sigterm_stops_a_run_cleanly_when_sigint_is_ignored(
    kafka_settings: KafkaSettings, tmp_path: Path, feeds_file: Path, command: str
) -> None:
    """A job a script or cron puts in the background starts with SIGINT ignored, and asyncio then sets no
    Ctrl-C handler: SIGTERM raised KeyboardInterrupt inside whichever task ran, and asyncio printed "Task
    exception was never retrieved" while the run went on."""
    import signal
    import time

    from demo.webserver import start_server
    from tests.integration.pipeline_support import write_sample_feeds

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    common = ["--bootstrap-servers", kafka_settings.bootstrap_servers, "--topic-prefix", kafka_settings.topic_prefix]
    with start_server(SAMPLE, delay=1.0) as slow:  # every answer a second late: the stop lands mid-run
        feeds = write_sample_feeds(slow, tmp_path / "slow.opml")
        if command == "run":
            argv = ["run", "--once", "--feeds", str(feeds), "--allow-host", "127.0.0.1"]
        else:  # an archive of the fast sample, replayed with the workers busy
            made = newswire("run", "--once", "--feeds", str(feeds_file), "--state-dir", str(tmp_path / "a"),
                            "--allow-host", "127.0.0.1", *common)  # fmt: skip
            assert made.returncode == 0, made.stderr
            argv = ["replay", str(tmp_path / "a" / "archive")]
        process = subprocess.Popen(
            [NEWSWIRE, *argv, "--state-dir", str(tmp_path / "s"), *common],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=ignore_sigint,  # noqa: PLW1509 -- one signal() call, no locks taken
        )  # fmt: skip
        time.sleep(2.0 if command == "run" else 1.0)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert stderr == "", stderr
