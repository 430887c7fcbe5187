"""Loaded by the extraction pool's forkserver before it forks a worker (:mod:`newswire.pool`): what
every worker needs is then loaded once and shared copy-on-write, instead of once per worker. That is the extractor with trafilatura (0.25 s of CPU to import) and py3langid's
language model (0.55 s to load), measured here: for two workers 1.6 CPU-s, about 5% of the 35 CPU-s
a replay of the 1,342 corpus pages takes.

The main process never imports this module: it needs neither.
"""

from __future__ import annotations

from newswire.processors.extract import load_language_model

load_language_model()
