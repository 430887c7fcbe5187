"""eval/tagging_eval.py's per-language counts, on hand-made rows."""

from __future__ import annotations

from pathlib import Path

from tests.support.scripts import load_script

EVAL = Path(__file__).resolve().parents[2] / "eval"
te = load_script("tagging_eval", EVAL / "tagging_eval.py")


def _row(key: str, lang: str | None, grade: int, score: float) -> object:
    label = te.Label(key=key, split="tune", grades={"china": grade}, traps=())
    item = te.EvalItem(key=key, title="", text="", lang=lang)
    return te.Row(label, {"china": score}, {"china": {}}, item)


def test_counts_per_language_found_positives_and_tagged_negatives() -> None:
    rows = [
        _row("a", "zh", 2, 0.9),  # found
        _row("b", "zh", 1, 0.2),  # missed
        _row("c", "zh", 0, 0.7),  # negative tagged
        _row("d", "en", 0, 0.1),  # negative, not tagged
        _row("e", None, 1, 0.8),  # no language: "?"
    ]
    table = te.by_language(rows, ["china"], {"china": 0.5})
    assert table["zh"] == {
        "items": 3,
        "topics": {"china": {"found": 1, "positives": 2, "neg_tagged": 1, "negatives": 1}},
    }
    assert table["en"]["topics"]["china"] == {"found": 0, "positives": 0, "neg_tagged": 0, "negatives": 1}
    assert table["?"]["topics"]["china"]["found"] == 1
