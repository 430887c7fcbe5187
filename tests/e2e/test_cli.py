"""The `newswire` command as a user runs it: a real process, real broker, real local web, real Prefect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from newswire.connectors.kafka import KafkaSettings
from newswire.devbroker import free_port
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

    tail = newswire("tail", "china", "--from-beginning", "--timeout", "2", "--json", *common)
    assert tail.returncode == 0, tail.stderr
    china = [json.loads(line) for line in tail.stdout.splitlines()]
    assert china and all("china" in {t["slug"] for t in m["topics"]} for m in china)

    status = newswire("feeds", "status", "--json", "--state-dir", str(state))
    assert status.returncode == 0, status.stderr
    rows = {r["url"].rsplit("/", 1)[-1]: r for r in json.loads(status.stdout)}
    assert rows["broken.xml"]["consecutive_failures"] == 1 and "ill-formed" in rows["broken.xml"]["last_error"]
    assert rows["courier.xml"]["http_status"] == 200 and rows["courier.xml"]["entries_seen"] == 6


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


def test_a_state_dir_that_is_a_file_and_a_file_that_is_no_warc_are_user_errors(tmp_path: Path) -> None:
    story = tmp_path / "story.txt"
    story.write_text("not an archive\n")
    upgrade = newswire("db", "upgrade", "--state-dir", str(story))
    assert upgrade.returncode == 2 and "is not a directory" in one_line_error(upgrade)
    # checked before the broker is: no broker listens on port 1
    replayed = newswire("replay", str(story), "--bootstrap-servers", "127.0.0.1:1", "--state-dir", str(tmp_path / "s"))
    assert replayed.returncode == 2 and one_line_error(replayed).endswith("story.txt: not a WARC file")


@pytest.mark.parametrize("args", [["--max", "0"], ["--max", "-1"], ["--timeout", "-1"]])
def test_tail_rejects_counts_and_timeouts_below_their_range(args: list[str]) -> None:
    result = newswire("tail", "articles", "--bootstrap-servers", "127.0.0.1:1", *args)
    assert result.returncode == 2 and args[0] in one_line_error(result)


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


@pytest.mark.parametrize(("stop", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_run_without_once_keeps_polling_through_prefect_until_interrupted(
    feeds_file: Path, kafka_settings: KafkaSettings, tmp_path: Path, read_all: Any, stop: str, status: int
) -> None:
    import signal
    import time

    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    env.pop("PREFECT_API_URL", None)  # no server: newswire runs the flow itself every minute
    process = subprocess.Popen(
        [
            NEWSWIRE, "run", "--feeds", str(feeds_file), "--state-dir", str(tmp_path / "state"),
            "--allow-host", "127.0.0.1", "--bootstrap-servers", kafka_settings.bootstrap_servers,
            "--topic-prefix", kafka_settings.topic_prefix,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=default_sigint,  # noqa: PLW1509 -- one signal() call, no locks taken
    )
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
    binary = tmp_path / "x.bin"
    binary.write_bytes(b"\xff\xfe\x00garbage\x80")
    result = newswire("tag", str(binary))
    assert result.returncode == 2 and "neither UTF-8 text nor an HTML page" in one_line_error(result)
    empty_page = tmp_path / "empty.html"
    empty_page.write_text("<!doctype html><html><body><nav>Home</nav></body></html>")
    result = newswire("tag", str(empty_page))
    assert result.returncode == 2 and "no article text found" in one_line_error(result)
