"""The unpacked copy of py3langid's model: the same answers as py3langid's own loader, built once,
and a damaged or unwritable cache costs only speed. Each case runs in a fresh interpreter, because
py3langid keeps its identifier in a module global."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES = [
    "Der schnelle braune Fuchs springt über den faulen Hund, und das ist auch gut so.",
    "Le gouvernement a annoncé mardi une réforme des retraites contestée par les syndicats.",
    "El presidente del Gobierno compareció ayer ante el Congreso de los Diputados.",
    "Президент России провёл совещание с членами правительства в Кремле.",
    "国务院总理主持召开国务院常务会议，部署进一步稳定经济的措施。",
    "The committee will hear testimony from the chairman of the Joint Chiefs of Staff on Tuesday.",
]

SCRIPT = """
import json, sys
from pathlib import Path
import py3langid
from py3langid import langid
mode, root = sys.argv[1], Path(sys.argv[2])
samples = json.loads(sys.stdin.read())
served = None
if mode == "cache":
    from newswire.connectors.langid_cache import load_language_model
    served = load_language_model(root)
    assert langid.IDENTIFIER is not None
print(json.dumps({"served": served, "answers": [list(py3langid.classify(s)) for s in samples]}))
"""


def _run(mode: str, root: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, str(root)],
        input=json.dumps(SAMPLES),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_cached_model_answers_like_py3langid(tmp_path: Path) -> None:
    stock = _run("stock", tmp_path)
    first = _run("cache", tmp_path)  # builds the entry
    entries = [p for p in tmp_path.iterdir()]
    assert [p.name.startswith("py3langid-") for p in entries] == [True]
    assert (entries[0] / "complete").exists()
    second = _run("cache", tmp_path)  # reads it
    assert first["served"] is True and second["served"] is True
    assert first["answers"] == stock["answers"] == second["answers"]
    codes = [answer[0] for answer in stock["answers"]]  # type: ignore[union-attr,index]
    assert codes == ["de", "fr", "es", "ru", "zh", "en"]


def test_damaged_entry_falls_back_to_py3langid(tmp_path: Path) -> None:
    stock = _run("stock", tmp_path)
    _run("cache", tmp_path)
    (entry,) = list(tmp_path.iterdir())
    (entry / "out_feat.npy").write_bytes(b"not an array")
    fallback = _run("cache", tmp_path)
    assert fallback["served"] is False
    assert fallback["answers"] == stock["answers"]


def test_unwritable_cache_falls_back(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    stock = _run("stock", tmp_path)
    result = _run("cache", blocker / "cache")  # cannot be created, whoever runs the test
    assert result["served"] is False
    assert result["answers"] == stock["answers"]


def test_cache_root_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from newswire.connectors.langid_cache import cache_root

    monkeypatch.setenv("NEWSWIRE_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache_root() == tmp_path / "explicit"
    monkeypatch.delenv("NEWSWIRE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "newswire"
