"""The CLI's last line of defence: an internal error prints one line naming the log file that keeps
its traceback (the log file of the command's state dir, $NEWSWIRE_STATE_DIR included)."""

from __future__ import annotations

from pathlib import Path

import pytest

from newswire import cli
from newswire.cli import _common, _tagging


def _fails_internally(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], state: Path
) -> tuple[str, Path]:
    """Runs the CLI, which must end in an internal error naming the state dir's log; its stderr and log."""
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    log_file = state / "newswire.log"
    assert err.strip().endswith(f"(traceback in {log_file})"), err
    return err, log_file


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("how", ["env", "option"])
def test_an_internal_error_names_the_log_file_with_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    state = tmp_path / "state"
    story = tmp_path / "story.txt"
    story.write_text("A title\nSome text.\n")

    def broken(text: str) -> tuple[str, str]:
        raise RuntimeError("split went wrong")

    monkeypatch.setattr("newswire.explain.split_title", broken)
    if how == "env":  # `tag` has no --state-dir: the environment's state dir holds its log
        monkeypatch.setenv("NEWSWIRE_STATE_DIR", str(state))
        argv = ["newswire", "tag", str(story)]
    else:
        monkeypatch.delenv("NEWSWIRE_STATE_DIR", raising=False)
        monkeypatch.setattr("newswire.connectors.state.StateStore.upgrade", lambda self: 1 / 0)
        argv = ["newswire", "db", "upgrade", "--state-dir", str(state)]
    err, log_file = _fails_internally(monkeypatch, capsys, argv, state)
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "Traceback" in log_file.read_text()


@pytest.mark.usefixtures("restore_logging")
def test_an_internal_error_before_the_command_set_up_its_log_still_keeps_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("NEWSWIRE_STATE_DIR", str(state))
    monkeypatch.setattr(_common.session, "log_file", None)

    real_start = _tagging.start
    calls: list[int] = []

    def start(verbose: int, state_dir: Path | None) -> Path:
        calls.append(verbose)
        if len(calls) == 1:  # the command fails before its log exists
            raise RuntimeError("start went wrong")
        return real_start(verbose, state_dir)

    monkeypatch.setattr(_tagging, "start", start)  # where `taxonomy check` looks it up
    _, log_file = _fails_internally(monkeypatch, capsys, ["newswire", "taxonomy", "check"], state)
    assert "start went wrong" in log_file.read_text() and "Traceback" in log_file.read_text()


_SIGTERM_IN_A_TASK = """
import asyncio, gc, os, signal, threading, time
from newswire.cli import _common, _main
signal.signal(signal.SIGTERM, _main._on_sigterm)  # as cli.main() installs it

async def busy():
    for _ in range(50):
        until = time.monotonic() + 0.2
        while time.monotonic() < until:  # pure Python work: the signal lands inside this task
            pass
        await asyncio.sleep(0)

async def main():
    tasks = [asyncio.create_task(busy()) for _ in range(2)]
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    for future in asyncio.as_completed(tasks):
        await future

try:
    asyncio.run(main())
except KeyboardInterrupt:
    gc.collect()  # a task left holding the interrupt would be reported now
    print("stopped", _common.session.terminated)
"""


def test_sigterm_during_asyncio_work_stops_like_ctrl_c_without_noise() -> None:
    # SIGTERM raised KeyboardInterrupt inside whichever task was running: `run --once` stopped with
    # "ERROR asyncio Task exception was never retrieved ... KeyboardInterrupt()" (and at times a
    # traceback) on stderr. It now goes through asyncio's Ctrl-C handling, which cancels the run.
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _SIGTERM_IN_A_TASK], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "stopped True", done.stdout + done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--feds", "x"], "No such option: --feds; did you mean --feeds?"),
        (["tail", "china", "--frm-beginning"], "No such option: --frm-beginning; did you mean --from-beginning?"),
        # click compared with the dashes, so any long option was "close" to --verbose
        (["run", "--bogus"], "No such option: --bogus ('newswire run --help' lists the options)"),
        (["feeds", "status", "-z"], "No such option: -z ('newswire feeds status --help' lists the options)"),
    ],
)
def test_an_unknown_option_suggests_only_options_that_look_like_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    monkeypatch.setattr("sys.argv", ["newswire", *argv])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == cli.EXIT_USER
    assert capsys.readouterr().err == f"newswire: error: {expected}\n"
