"""An embedding combiner file for tests of the ``embeddings`` extra's machinery: full size (384
dimensions, the extra's encoder), stamped for the shipped taxonomy as eval/train_embeddings.py --write
stamps one, but with made-up weights: it tests loading, fitting and scoring, not quality. (No combiner
ships while none passes the training script's rule; see docs/tagging.md.)"""

from __future__ import annotations

import json
import random
from pathlib import Path

from newswire.processors import embeddings as emb
from newswire.processors.tagging import Tagger, load_taxonomy

DIM = 384
# China's evidence and a small weight on Russia's: the combiner reads both topics.
READS = ("china", "russia")


def china_combiner() -> dict[str, object]:
    tagger = Tagger(load_taxonomy(), embeddings=False)
    rng = random.Random(20261207)
    components = [[rng.gauss(0.0, 1.0) / DIM**0.5 for _ in range(DIM)] for _ in range(4)]
    return {
        "about": "tests/support/combiners.py: made-up weights for tests of the extra's machinery",
        "slug": "china",
        "taxonomy": tagger.taxonomy.version,
        "reads": list(READS),
        "inputs": tagger.inputs_digest(READS),
        "encoder": emb.ENCODER_NAME,
        "max_chars": emb.DEFAULT_MAX_CHARS,
        "threshold": 0.5,
        "bias": -2.0,
        "weights": {"evidence": 1.5, "other:russia": -0.2},
        "mean": [0.0] * DIM,
        "components": components,
        "scale": [0.05] * len(components),
        "component_weights": [0.3, -0.2, 0.1, 0.05],
    }


def write_china_combiner(directory: Path) -> Path:
    """``directory/china.json`` (the directory is created); returns the directory, for
    NEWSWIRE_EMBEDDINGS."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "china.json").write_text(json.dumps(china_combiner()), encoding="utf-8")
    return directory
