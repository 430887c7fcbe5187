"""Loaded by the extraction pool's forkserver before it forks a worker (:mod:`newswire.pool`): what
every worker needs is then loaded once and shared copy-on-write, instead of once per worker. That is the
extractor with trafilatura (0.25 s of CPU to import) and py3langid's language model (0.05 s from the
unpacked copy in the user's cache, :mod:`newswire.connectors.langid_cache`; 0.7 s from the package's
compressed file the first time, or where no cache can be written).

The main process never imports this module: it needs neither.
"""

from __future__ import annotations

import signal

from newswire.connectors.langid_cache import load_language_model

load_language_model()

import newswire.processors.extract  # noqa: F401 -- the extractor, imported here once for every worker

# Ctrl-C at a terminal signals every process of the foreground group, these workers included, and a
# service manager's stop may signal every process of the service: each worker would print a
# KeyboardInterrupt traceback from wherever it was, or die and break the pool under the parent's tasks
# (whose errors asyncio then reports as never retrieved). The parent alone handles SIGINT and SIGTERM
# and shuts the pool down; its workers ignore both (SIGKILL still ends one). The forkserver gives each
# worker the handlers it had after this preload, so this holds from a worker's first instruction.
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
