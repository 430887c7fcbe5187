"""Every command's --help: flags show no value type (typer labels them "<bool>" unless told not to)."""

from __future__ import annotations

from typing import Any

import typer
from typer.testing import CliRunner

from newswire.cli import app


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    # typer 0.29 builds its commands on its own copy of click, so a group is known by its commands
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


def test_no_flag_is_shown_as_taking_a_value() -> None:
    runner = CliRunner()
    paths = _commands(typer.main.get_command(app))
    assert ("taxonomy", "eval") in paths and ("run",) in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        assert "--help" in result.output
        bad = [line for line in result.output.splitlines() if "<bool>" in line or "<list[str]>" in line]
        assert not bad, (path, bad)
