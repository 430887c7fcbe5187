"""Peak resident memory of this process and its descendants (the extraction pool's workers included),
sampled from /proc while a measured run is going on. Linux only; elsewhere it reports nothing."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType
from typing import Self


def _tree_rss_kib(root: int, exclude: frozenset[int]) -> int:
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss[pid] = int(line.split()[1])
                break
    total = 0
    for pid, kib in rss.items():
        node = pid
        while node not in (0, 1) and node not in exclude:
            if node == root:
                total += kib
                break
            node = parents.get(node, 0)
    return total


class TreeMemory:
    """``with TreeMemory(exclude={server_pid}) as mem: ...`` then ``mem.peak_mib``."""

    def __init__(self, *, exclude: set[int] | None = None, interval: float = 0.1) -> None:
        self._exclude = frozenset(exclude or ())
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak_kib = 0

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / 1024

    def _sample(self) -> None:
        root = os.getpid()
        while True:
            self.peak_kib = max(self.peak_kib, _tree_rss_kib(root, self._exclude))
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> Self:
        if Path("/proc/self/stat").exists():
            self._thread = threading.Thread(target=self._sample, name="tree-memory", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
