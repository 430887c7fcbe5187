"""Logging and Prefect's environment: what reaches the terminal and what only the log file."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from newswire.logs import SharedRotatingFileHandler, quiet_prefect, setup_logging

_PREFECT_ENV = (
    "DO_NOT_TRACK",
    "PREFECT_HOME",
    "PREFECT_LOGGING_LEVEL",
    "PREFECT_SERVER_ANALYTICS_ENABLED",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW",
    "PREFECT_SERVER_LOGGING_LEVEL",
    "PREFECT_LOGGING_LOG_PRINTS",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
)


@pytest.fixture
def clean_prefect_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PREFECT_ENV:
        monkeypatch.delenv(name, raising=False)  # restored after the test, whatever quiet_prefect sets


@pytest.mark.usefixtures("clean_prefect_env")
def test_quiet_prefect_opts_out_of_telemetry_unless_the_user_decided(monkeypatch: pytest.MonkeyPatch) -> None:
    quiet_prefect(Path("/nonexistent/prefect"))
    assert os.environ["DO_NOT_TRACK"] == "1"
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    monkeypatch.setenv("DO_NOT_TRACK", "0")
    quiet_prefect(Path("/nonexistent/prefect"))
    assert os.environ["DO_NOT_TRACK"] == "0"


def test_prefects_telemetry_notice_stays_off_a_terminal(tmp_path: Path) -> None:
    """Prefect prints its notice at first import in a fresh PREFECT_HOME when stdout or stderr is a
    terminal (and no CI variable is set): a pseudo-terminal stands in for the user's."""
    import pty

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "DO_NOT_TRACK"}
    for name in (
        "CI",
        "GITHUB_ACTIONS",
        "GITLAB_CI",
        "JENKINS_URL",
        "TRAVIS",
        "CIRCLECI",
        "BUILDKITE",
        "TF_BUILD",
        "CODEBUILD_BUILD_ID",
        "BITBUCKET_COMMIT",
        "TEAMCITY_VERSION",
        "DRONE",
        "SEMAPHORE",
        "APPVEYOR",
        "BUDDY",
        "CI_NAME",
    ):
        env.pop(name, None)
    code = (
        "from pathlib import Path; from newswire.logs import quiet_prefect; "
        f"quiet_prefect(Path({str(tmp_path / 'prefect')!r})); import prefect; print('imported')"
    )
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, env=env
        )
        os.close(terminal)
        output = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        assert process.wait(timeout=120) == 0, output
    finally:
        os.close(controller)
    text = output.decode("utf-8", "replace")
    assert "imported" in text
    assert "anonymous usage data" not in text, text


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("verbosity", [0, 1])
def test_python_warnings_go_to_the_log_file_and_to_the_terminal_only_with_v(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verbosity: int
) -> None:
    log_file = setup_logging(verbosity, tmp_path / "newswire.log")
    assert log_file == tmp_path / "newswire.log"
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a library's complaint", UserWarning, stacklevel=1)
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert "a library's complaint" in log_file.read_text()
    assert ("a library's complaint" in capsys.readouterr().err) == (verbosity >= 1)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("verbosity", [0, 1, 2])
def test_prefects_queue_services_warn_in_the_log_file_and_on_the_terminal_only_with_vv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verbosity: int
) -> None:
    """A served run whose Prefect server went away printed "WARNING EventsWorker Still processing items"
    under its one-line error: Prefect's queue services log under their class names, outside the "prefect." loggers."""
    prefect_dir = importlib.util.find_spec("prefect").submodule_search_locations[0]  # type: ignore[union-attr]
    services = Path(prefect_dir) / "_internal" / "concurrency" / "services.py"
    assert services.is_file()
    log_file = setup_logging(verbosity, tmp_path / "newswire.log")
    assert log_file is not None
    logger = logging.getLogger("EventsWorker")
    logger.handle(
        logger.makeRecord(
            "EventsWorker", logging.WARNING, str(services), 231, "Still processing items: 2 items remaining...",
            (), None,
        )
    )  # fmt: skip
    logging.getLogger("newswire.x").warning("newswire's own warning")
    for handler in logging.getLogger().handlers:
        handler.flush()
    err = capsys.readouterr().err
    assert "Still processing items" in log_file.read_text()
    assert ("Still processing items" in err) == (verbosity >= 2)
    assert "newswire's own warning" in err


@pytest.mark.usefixtures("restore_logging")
def test_setup_logging_says_when_there_is_no_log_file(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert setup_logging(0, blocker / "newswire.log") is None


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("verbosity", [1, 2, 3])
def test_other_libraries_debug_lines_reach_the_terminal_only_with_vvv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verbosity: int
) -> None:
    """-vv is newswire's debug detail: Prefect's websockets client logged every frame at -vv, graphviz
    its deprecation bookkeeping. Their warnings, and newswire's own lines, still show."""
    setup_logging(verbosity, tmp_path / "newswire.log")
    logging.getLogger("websockets.client").debug("> TEXT frame")
    logging.getLogger("graphviz._tools").info("deprecate positional args")
    logging.getLogger("websockets.client").warning("connection lost")
    logging.getLogger("newswire.live").info("phase poll: 4 feeds")
    logging.getLogger("newswire.pipeline").debug("entry fate")
    err = capsys.readouterr().err
    assert ("> TEXT frame" in err) == ("deprecate positional args" in err) == (verbosity >= 3), err
    assert "connection lost" in err and "phase poll: 4 feeds" in err
    assert ("entry fate" in err) == (verbosity >= 2)


_FLOW_RUN_CHILD = """
import os, socket, sys
from pathlib import Path

from newswire.logs import prefect_console_to_log_env

os.environ.update(prefect_console_to_log_env(Path(sys.argv[1])))
closed = socket.socket()
closed.bind(("127.0.0.1", 0))
os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{closed.getsockname()[1]}/api"  # nothing listens
os.environ["PREFECT_CLIENT_MAX_RETRIES"] = "0"

from prefect import flow
from prefect.flow_engine import run_flow_in_subprocess


@flow
def noop() -> None:
    pass


if __name__ == "__main__":
    process = run_flow_in_subprocess(noop)  # as Prefect's runner starts the flow runs `run` serves
    process.join()
    print("flow run child exit", process.exitcode)
"""


def test_a_served_flow_run_that_fails_to_start_logs_to_the_file_not_the_terminal(tmp_path: Path) -> None:
    """CI caught it: the Prefect server stopped while the runner was starting a flow run; the child failed
    in Prefect's engine before newswire's code ran, and Prefect's handlers (set up at its import) printed
    its error and a 100-line traceback on the terminal. The child's environment sends them to the log."""
    script = tmp_path / "child.py"
    script.write_text(_FLOW_RUN_CHILD)
    log_file = tmp_path / "state" / "newswire.log"
    log_file.parent.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "FORCE_COLOR": "1",  # CI runners set it; Rich then colours a stream that is no terminal too
    }
    done = subprocess.run(
        [sys.executable, str(script), str(log_file)],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.stdout.strip() == "flow run child exit 1", done.stderr
    assert done.stderr == ""
    logged = log_file.read_text()
    assert "ERROR   | prefect.engine - Execution exited with unexpected exception" in logged
    assert "Traceback (most recent call last)" in logged
    assert "\x1b[" not in logged  # no colour codes in a log file


def test_while_serving_child_processes_write_their_stderr_to_the_log_and_newswire_keeps_the_terminal(
    tmp_path: Path,
) -> None:
    """Flow-run processes Prefect's runner starts inherit descriptor 2: one that Ctrl-C caught while it
    was still importing printed a KeyboardInterrupt traceback on the user's terminal. While serving,
    their descriptor 2 is the log file; newswire's own warnings still reach the terminal."""
    import subprocess
    import sys

    log = tmp_path / "state" / "newswire.log"
    script = f"""
import logging, subprocess, sys
from pathlib import Path
from newswire.logs import setup_logging
from newswire.flows.poll import _children_stderr_to
setup_logging(0, Path({str(log)!r}))
with _children_stderr_to(Path({str(log)!r})):
    subprocess.run([sys.executable, "-c", "import os; os.write(2, b'child traceback\\\\n')"], check=True)
    logging.getLogger("newswire").warning("newswire's own warning")
sys.stderr.write("after serving\\n")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "child traceback" not in done.stderr
    assert "newswire's own warning" in done.stderr and done.stderr.endswith("after serving\n"), done.stderr
    assert "child traceback" in log.read_text()


def test_processes_sharing_a_log_rotate_it_as_one(tmp_path: Path) -> None:
    """A served run and its flow-run children append to one log. Rotating each on its own count, one
    wrote on into the file the other had renamed to .1: every other line went to another file, and
    `tail -f newswire.log` showed only one process's lines. Two handlers stand for two processes (each
    has its own open file, as a process does)."""
    log_file = tmp_path / "newswire.log"
    handlers = [SharedRotatingFileHandler(log_file, maxBytes=2000, backupCount=3) for _ in range(2)]
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(message)s"))
    for i in range(400):
        handlers[i % 2].emit(logging.LogRecord("newswire", logging.INFO, "", 0, f"{i:04d} " + "x" * 24, None, None))
    for handler in handlers:
        handler.close()
    numbers = []
    for name in ("newswire.log.3", "newswire.log.2", "newswire.log.1", "newswire.log"):
        numbers += [int(line[:4]) for line in (tmp_path / name).read_text().splitlines()]
    # oldest file first: one unbroken run of lines ending with the last one written
    assert numbers == list(range(numbers[0], 400)), numbers
    assert len(numbers) > 200  # 4 files of 2000 bytes hold ~260 lines of 30 bytes
