"""Where a `newswire replay` of the corpus pages spends its time: start-up and CPU per process.

Packs the corpus article pages into a WARC, starts a Tansu broker on loopback, runs `newswire replay`
as a user does (a process of its own) and samples /proc every 0.1 s: when the pool's forkserver and
its workers appear, how busy the two cores are in the first seconds, and the CPU seconds of the main
process, the forkserver and the workers at the end.

    .venv/bin/python benchmarks/replay_startup.py [--workers N] [--limit N] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_warc import corpus_dir, write_warc
from pack_article_pages import page_records
from replay_bench import process_tree

INTERVAL = 0.1


def _is_forkserver(pid: int) -> bool:
    try:
        return b"multiprocessing.forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--limit", type=int, default=None, help="only the first N pages")
    parser.add_argument("--corpus", type=Path, default=None)
    args = parser.parse_args()

    from newswire.devbroker import DevBroker

    newswire = Path(sys.executable).with_name("newswire")
    with tempfile.TemporaryDirectory(prefix="newswire-startup-") as tmp, DevBroker() as broker:
        warc = Path(tmp) / "pages.warc.gz"
        write_warc(warc, page_records(corpus_dir(args.corpus), args.limit), "page")
        command = [str(newswire), "replay", str(warc), "--bootstrap-servers", broker.bootstrap,
                   "--workers", str(args.workers), "--topic-prefix", f"startup{uuid.uuid4().hex[:8]}",
                   "--state-dir", str(Path(tmp) / "state")]
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen: dict[int, tuple[int, float]] = {}
        samples: list[tuple[float, float]] = []  # (seconds since start, CPU seconds of the whole tree)
        forkserver_at = workers_at = None
        forkserver: int | None = None
        while proc.poll() is None:
            time.sleep(INTERVAL)
            tree = process_tree(proc.pid)
            seen.update(tree)
            now = time.perf_counter() - started
            samples.append((now, sum(cpu for _, cpu in seen.values())))
            if forkserver is None:
                forkserver = next((p for p, (ppid, _) in tree.items() if ppid == proc.pid and _is_forkserver(p)), None)
                if forkserver is not None:
                    forkserver_at = now
            workers = [p for p, (ppid, _) in tree.items() if forkserver is not None and ppid == forkserver]
            if len(workers) >= args.workers and workers_at is None:
                workers_at = now
        wall = time.perf_counter() - started
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"newswire replay failed ({proc.returncode}): {err.strip()[-300:]}")

    worker_cpu = sum(cpu for pid, (ppid, cpu) in seen.items() if ppid == forkserver)
    rows = [
        ("wall seconds", f"{wall:.2f}"),
        ("forkserver running after (s)", f"{forkserver_at:.2f}" if forkserver_at is not None else "-"),
        (f"{args.workers} workers running after (s)", f"{workers_at:.2f}" if workers_at is not None else "-"),
        ("CPU s: main process", f"{seen[proc.pid][1]:.2f}" if proc.pid in seen else "-"),
        ("CPU s: forkserver (preload)", f"{seen[forkserver][1]:.2f}" if forkserver in seen else "-"),
        ("CPU s: workers", f"{worker_cpu:.2f}"),
        ("CPU s: everything", f"{samples[-1][1]:.2f}" if samples else "-"),
    ]
    for second in (1, 2, 3):
        before = [cpu for at, cpu in samples if at <= second]
        if before:
            rows.append((f"cores busy on average in the first {second} s", f"{before[-1] / second:.2f}"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>8}")
    print(out.strip().splitlines()[-1] if out.strip() else "")


if __name__ == "__main__":
    main()
