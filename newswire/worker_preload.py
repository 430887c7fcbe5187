"""Loaded by the extraction pool's forkserver before it forks a worker (:mod:`newswire.pool`): what
every worker needs is then loaded once and shared copy-on-write, instead of once per worker. That is the
extractor with trafilatura (0.25 s of CPU to import) and py3langid's language model (0.05 s from the
unpacked copy in the user's cache, :mod:`newswire.connectors.langid_cache`; 0.7 s from the package's
compressed file the first time, or where no cache can be written).

The main process never imports this module: it needs neither.
"""

from __future__ import annotations

from newswire.connectors.langid_cache import load_language_model
from newswire.pool import ignore_stop_signals

load_language_model()

import newswire.processors.extract  # noqa: F401 -- the extractor, imported here once for every worker

# The workers ignore stop signals from their first instruction: the forkserver hands each the handlers
# it had after this preload (the pool's initializer sets them again, for a forkserver started without it).
ignore_stop_signals()
