"""The installed ``newswire`` command, run as a user runs it (tests of the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

NEWSWIRE = str(Path(sys.executable).with_name("newswire"))


def newswire(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Runs ``newswire ARGS``; a PREFECT_API_URL of the tests' own environment is dropped (``env`` may set
    one)."""
    full_env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    full_env.update(env or {})
    return subprocess.run(
        [NEWSWIRE, *args], capture_output=True, text=True, timeout=timeout, env=full_env, check=False
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a failed command (no traceback anywhere)."""
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("newswire: error: ")
    return lines[0]
