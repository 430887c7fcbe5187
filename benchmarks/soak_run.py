"""A long-running ``newswire run`` over many cycles: does it leak memory, threads or file descriptors?

    .venv/bin/python benchmarks/soak_run.py [--variants ok,broker-down,ssl-mismatch] [--seconds 240]
                                            [--warmup 5] [--csv samples.csv] [--keep]

Runs the real command, ``newswire run --feeds ... --interval 0.05 -v`` (no ``--once``, no
``PREFECT_API_URL``: ``poll_forever`` in ``flows/poll.py``, a Prefect flow run in-process every tick,
the tick being ``--interval`` minutes, 3 s here), against the demo sample web (``demo/sample``, served by
``demo/webserver.py``) and a Tansu dev broker, everything on 127.0.0.1. The ``NEWSWIRE_*`` schedule
knobs (``ENV_KNOBS``) bring the poll floor, ceiling and back-off under the tick, so every cycle polls
every feed again: after the first cycle three answer 304 and the broken one fails, each time.

Variants: ``ok`` (the broker up), ``broker-down`` (``--bootstrap-servers`` a loopback port nothing listens
on: every cycle ends "cycle not completed"), ``ssl-mismatch`` (``--kafka-option security_protocol=SSL``
against the plaintext dev broker: the TLS handshake is never answered, every cycle ends "cycle not
completed"; until commit 64ffa3d this left one thread behind per cycle).

Each cycle's line on the run's output (``-v`` prints one for every cycle) counts a cycle; after it the run
process and each of its descendants are read from /proc: VmRSS, threads, open fds. The descendants are
grouped by what they are: the Prefect ephemeral API server (uvicorn), the forkserver, the extraction
workers it forks, multiprocessing's resource tracker. Between cycles the same is sampled every second,
for the maxima. The first ``--warmup`` cycles are not measured; then ``--seconds`` of cycles are.

Prints a table per variant, a row per process group: processes, RSS at the end of the warm-up and at the
end (MiB) and its range over the per-cycle samples, the RSS slope in KiB per cycle (least squares over the
per-cycle samples after the warm-up, and over their second half alone: growth that is only warm-up
flattens there; a slope over few cycles of a saw-tooth, as the allocator's heap makes, says little: read
the range), threads and fds at the start, the end and their maximum; with the size of Prefect's SQLite
database (its flow run, task run, state, event and artifact rows of every cycle) and how the run stopped
(SIGINT, sent again when one was not obeyed within 15 s: Prefect 3.9 drops a KeyboardInterrupt that
arrives while a flow run is being finished).
"""

from __future__ import annotations

import argparse
import csv
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demo.webserver import start_server
from newswire.devbroker import DevBroker, free_port
from tests.integration.pipeline_support import SAMPLE, write_sample_feeds

VARIANTS = ("ok", "broker-down", "ssl-mismatch")
INTERVAL_MINUTES = 0.05  # --interval: the tick is min(1 min, interval), 3 s
# Minutes (config.SCHEDULE_ENV): each feed is due again well within a tick, whatever it answered.
ENV_KNOBS = {
    "NEWSWIRE_POLL_FLOOR": "0.01",
    "NEWSWIRE_POLL_CEILING": "0.02",  # also caps the courier's <ttl> and the RDF's sy:updatePeriod
    "NEWSWIRE_POLL_JITTER": "0",
    "NEWSWIRE_BACKOFF_BASE": "0.01",  # the broken feed fails every cycle: no exponential back-off
    "NEWSWIRE_BACKOFF_MAX": "0.02",
    "NEWSWIRE_PARK_AFTER": "1000000000",  # nor parking after 10 failures
}
FIRST_CYCLE_TIMEOUT_S = 300.0  # a fresh PREFECT_HOME migrates Prefect's database first: 20-30 s here
SAMPLE_EVERY_S = 1.0
STOP_WAIT_S = 15.0

POLLED = re.compile(r"^run: (\d+) feeds polled \((\d+) not modified, (\d+) unchanged, (\d+) failed\)")
NOT_COMPLETED = "cycle not completed:"
INTERNAL_ERROR = "cycle failed: internal error"
ROLES = ("run", "prefect server", "forkserver", "extract workers", "resource tracker", "other")


# -- /proc ----------------------------------------------------------------------------------------------


@dataclass
class Usage:
    procs: int = 0
    rss_kib: int = 0
    threads: int = 0
    fds: int = 0

    def add(self, other: Usage) -> None:
        self.procs += other.procs
        self.rss_kib += other.rss_kib
        self.threads += other.threads
        self.fds += other.fds


@dataclass
class Sample:
    at: float
    cycle: int  # cycles seen when it was taken
    per_cycle: bool  # taken right after a cycle's line (else a periodic one, for the maxima)
    roles: dict[str, Usage]
    pids: frozenset[int]


def _proc_usage(pid: int) -> tuple[int, Usage] | None:
    """(parent pid, usage) of a live process; None when it is gone (or a zombie)."""
    base = Path("/proc") / str(pid)
    try:
        status = (base / "status").read_text()
        fds = len(os.listdir(base / "fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if "VmRSS" not in fields:  # a zombie has no memory left
        return None
    usage = Usage(1, int(fields["VmRSS"].split()[0]), int(fields["Threads"]), fds)
    return int(fields["PPid"]), usage


def _cmdline(pid: int) -> str:
    try:
        raw = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = (Path("/proc") / entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def tree_roles(root: int) -> dict[int, str]:
    """Every live process of ``root``'s tree, by what it is."""
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    roles = {root: "run"}
    pending = [root]
    while pending:
        parent = pending.pop()
        for pid in children.get(parent, []):
            command = _cmdline(pid)
            if roles[parent] in ("forkserver", "extract workers"):
                roles[pid] = "extract workers"  # forked by the forkserver: its command line too
            elif "prefect.server" in command or "uvicorn" in command:
                roles[pid] = "prefect server"
            elif "multiprocessing.forkserver" in command:
                roles[pid] = "forkserver"
            elif "multiprocessing.resource_tracker" in command:
                roles[pid] = "resource tracker"
            else:
                roles[pid] = "other"
            pending.append(pid)
    return roles


def sample(root: int, cycle: int, per_cycle: bool) -> Sample:
    roles: dict[str, Usage] = {}
    tree = tree_roles(root)
    for pid, role in tree.items():
        read = _proc_usage(pid)
        if read is not None:
            roles.setdefault(role, Usage()).add(read[1])
    return Sample(time.monotonic(), cycle, per_cycle, roles, frozenset(tree))


# -- the run --------------------------------------------------------------------------------------------


@dataclass
class Cycle:
    at: float
    kind: str  # polled, not-completed, internal-error
    polled: int = 0
    not_modified: int = 0
    failed: int = 0


@dataclass
class Result:
    variant: str
    cycles: list[Cycle] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    warmup: int = 0
    seconds: float = 0.0
    prefect_db_mib: tuple[float, float] = (0.0, 0.0)
    stopped: str = ""
    left_behind: list[str] = field(default_factory=list)
    log: Path = Path()


class RunProcess:
    """``newswire run`` in its own session, its output (stdout and stderr) read line by line into a log
    file; each cycle's line goes on ``cycles``."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.cycles: queue.Queue[Cycle] = queue.Queue()
        self._log_file: IO[str] = open(log, "w", encoding="utf-8")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=env, text=True, errors="replace", cwd=ROOT,
            start_new_session=True,  # the benchmark's own Ctrl-C does not reach it: stop() stops it
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, name="run-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log_file.write(line)
            self._log_file.flush()
            now = time.monotonic()
            if match := POLLED.match(line):
                polled, not_modified, _, failed = (int(g) for g in match.groups())
                self.cycles.put(Cycle(now, "polled", polled, not_modified, failed))
            elif line.startswith(NOT_COMPLETED):
                self.cycles.put(Cycle(now, "not-completed"))
            elif line.startswith(INTERNAL_ERROR):
                self.cycles.put(Cycle(now, "internal-error"))

    def stop(self) -> str:
        """SIGINT (as Ctrl-C), again when it was not obeyed; SIGTERM, then SIGKILL, as a last resort."""
        try:
            for attempt in range(1, 4):
                if self.proc.poll() is not None:
                    return f"had exited ({self.proc.returncode})"
                self.proc.send_signal(signal.SIGINT)
                try:
                    code = self.proc.wait(STOP_WAIT_S)
                except subprocess.TimeoutExpired:
                    continue
                return f"exit {code} after {attempt} SIGINT" + (
                    f" ({attempt - 1} not obeyed within {STOP_WAIT_S:g} s)" if attempt > 1 else ""
                )
            self.proc.terminate()
            try:
                return f"exit {self.proc.wait(STOP_WAIT_S)} after SIGTERM (3 SIGINT not obeyed)"
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return f"killed ({self.proc.wait()}): neither SIGINT nor SIGTERM obeyed"
        finally:
            self._reader.join(10)
            self._log_file.close()


def _db_mib(home: Path) -> float:
    return sum(p.stat().st_size for p in home.glob("prefect.db*")) / 2**20 if home.is_dir() else 0.0


def soak(variant: str, args: argparse.Namespace, feeds: Path, broker: DevBroker, work: Path) -> Result:
    result = Result(variant, warmup=args.warmup)
    run_dir = work / variant
    run_dir.mkdir()
    command = [
        str(Path(sys.executable).with_name("newswire")), "run",
        "--feeds", str(feeds),
        "--state-dir", str(run_dir / "state"),
        "--allow-host", "127.0.0.1",
        "--bootstrap-servers", broker.bootstrap if variant != "broker-down" else f"127.0.0.1:{free_port()}",
        "--topic-prefix", f"soak{variant.replace('-', '')}",
        "--interval", str(INTERVAL_MINUTES),
        "-v",
    ]  # fmt: skip
    if variant == "ssl-mismatch":
        command += ["--kafka-option", "security_protocol=SSL"]
    # no Prefect server (PREFECT_API_URL): poll_forever; a Prefect home of the run's own
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    home = run_dir / "prefect"
    env |= ENV_KNOBS | {
        "PREFECT_HOME": str(home),
        "NEWSWIRE_CACHE_DIR": str(work / "cache"),
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
    }
    run = RunProcess(command, env, run_dir / "output.log")
    result.log = run.log
    seen_pids: set[int] = set()
    try:
        started = time.monotonic()
        warm_end: float | None = None
        while True:
            try:
                cycle = run.cycles.get(timeout=SAMPLE_EVERY_S)
            except queue.Empty:
                cycle = None
            if run.proc.poll() is not None:
                raise RuntimeError(f"{variant}: newswire run exited ({run.proc.returncode}); see {run.log}")
            if cycle is None and not result.cycles and time.monotonic() - started > FIRST_CYCLE_TIMEOUT_S:
                raise RuntimeError(f"{variant}: no cycle within {FIRST_CYCLE_TIMEOUT_S:g} s; see {run.log}")
            if cycle is not None:
                result.cycles.append(cycle)
            taken = sample(run.proc.pid, len(result.cycles), cycle is not None)
            seen_pids.update(taken.pids)
            if len(result.cycles) < args.warmup:
                continue
            if warm_end is None:
                if cycle is None:
                    continue
                warm_end = taken.at
                result.prefect_db_mib = (_db_mib(home), 0.0)
                print(f"{variant}: warm-up over after {len(result.cycles)} cycles "
                      f"({taken.at - started:.0f} s); measuring {args.seconds:g} s", file=sys.stderr)
            result.samples.append(taken)
            if taken.at - warm_end >= args.seconds and cycle is not None:
                result.seconds = taken.at - warm_end
                break
        result.prefect_db_mib = (result.prefect_db_mib[0], _db_mib(home))
    finally:
        result.stopped = run.stop()
        time.sleep(1)
        for pid in sorted(seen_pids - {run.proc.pid}):
            if _proc_usage(pid) is not None and _cmdline(pid):
                result.left_behind.append(f"{pid} {_cmdline(pid)[:80]}")
                os.kill(pid, signal.SIGKILL)  # ours: started by the run we started
    return result


# -- the table ------------------------------------------------------------------------------------------


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0


def describe_cycles(result: Result) -> str:
    measured = result.cycles[result.warmup :]
    kinds = Counter(c.kind for c in measured)
    outcomes = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    text = (f"{len(result.cycles)} cycles, {len(measured)} of them measured over {result.seconds:.0f} s "
            f"after a warm-up of {result.warmup}: {outcomes}")
    polled = [c for c in measured if c.kind == "polled"]
    if polled:
        def spread(values: list[int]) -> str:
            return f"{min(values)}" if min(values) == max(values) else f"{min(values)}-{max(values)}"

        text += (f"; per polled cycle: {spread([c.polled for c in polled])} feeds polled, "
                 f"{spread([c.not_modified for c in polled])} not modified (304), "
                 f"{spread([c.failed for c in polled])} failed")
    return text


def print_table(result: Result) -> None:
    print(f"\n== {result.variant}: {describe_cycles(result)}")
    where = f"; output in {result.log}" if result.log.exists() else ""
    print(f"   stopped: {result.stopped}; Prefect database {result.prefect_db_mib[0]:.1f} -> "
          f"{result.prefect_db_mib[1]:.1f} MiB{where}")
    if result.left_behind:
        print("   left behind after the run stopped (killed): " + "; ".join(result.left_behind))
    header = (f"{'process':17} {'procs':>5} {'RSS MiB start':>13} {'end':>7} {'min-max':>11} "
              f"{'KiB/cycle':>9} {'2nd half':>8} {'threads s/e/max':>15} {'fds s/e/max':>13}")
    print(header)
    print("-" * len(header))
    per_cycle = [s for s in result.samples if s.per_cycle]
    if not per_cycle:
        print("(no samples)")
        return
    first, last = per_cycle[0], per_cycle[-1]
    half = per_cycle[len(per_cycle) // 2 :]
    for role in ROLES:
        if not any(role in s.roles for s in result.samples):
            continue
        start, end = first.roles.get(role, Usage()), last.roles.get(role, Usage())
        over_all = slope([(s.cycle, s.roles.get(role, Usage()).rss_kib) for s in per_cycle])
        over_half = slope([(s.cycle, s.roles.get(role, Usage()).rss_kib) for s in half])
        rss = [s.roles.get(role, Usage()).rss_kib / 1024 for s in per_cycle]
        spread = f"{min(rss):.0f}-{max(rss):.0f}"
        max_threads = max(s.roles.get(role, Usage()).threads for s in result.samples)
        max_fds = max(s.roles.get(role, Usage()).fds for s in result.samples)
        max_procs = max(s.roles.get(role, Usage()).procs for s in result.samples)
        procs = f"{start.procs}-{max_procs}" if max_procs != start.procs else f"{start.procs}"
        threads = f"{start.threads}/{end.threads}/{max_threads}"
        fds = f"{start.fds}/{end.fds}/{max_fds}"
        print(f"{role:17} {procs:>5} {start.rss_kib / 1024:>13.1f} {end.rss_kib / 1024:>7.1f} {spread:>11} "
              f"{over_all:>+9.1f} {over_half:>+8.1f} {threads:>15} {fds:>13}")


def write_csv(path: Path, results: list[Result]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(
            ["variant", "seconds", "cycle", "per_cycle", "process", "procs", "rss_kib", "threads", "fds"]
        )
        for result in results:
            if not result.samples:
                continue
            start = result.samples[0].at
            for s in result.samples:
                for role, usage in s.roles.items():
                    writer.writerow([result.variant, f"{s.at - start:.2f}", s.cycle, int(s.per_cycle), role,
                                     usage.procs, usage.rss_kib, usage.threads, usage.fds])


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="ok,broker-down,ssl-mismatch", help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--seconds", type=float, default=240.0, help="measured per variant after the warm-up")
    parser.add_argument("--warmup", type=int, default=5, help="cycles not measured at the start of each run")
    parser.add_argument("--keep", action="store_true", help="keep the runs' state, Prefect home and output")
    parser.add_argument("--csv", type=Path, help="write every sample here (one row per process group)")
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        given = ", ".join(unknown) or "(none given)"
        parser.error(f"--variants: unknown {given}; known: {', '.join(VARIANTS)}")
    if args.seconds <= 0 or args.warmup < 1:
        parser.error("--seconds must be positive and --warmup at least 1")
    if not Path("/proc/self/status").exists():
        parser.error("reads /proc: Linux only")
    # A shell starting this in the background (`... &` without job control, nohup) ignores SIGINT for
    # it; the runs would inherit that and ignore the SIGINT that stops them.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # A SIGTERM unwinds as an exception would, so the run, the server and the broker are stopped too.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)

    work = Path(tempfile.mkdtemp(prefix="soak-run-"))
    results: list[Result] = []
    broker = DevBroker()
    done = False
    try:
        broker.start()
        with start_server(SAMPLE) as web:
            feeds = write_sample_feeds(web, work / "feeds.opml")
            print(f"broker {broker.bootstrap}, sample web {web.base_url}, work dir {work}", file=sys.stderr)
            for variant in variants:
                results.append(soak(variant, args, feeds, broker, work))
        done = True
    finally:
        broker.stop(grace_s=0)
        if done and not args.keep:  # after a failure the runs' output stays, for a look
            shutil.rmtree(work, ignore_errors=True)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    knobs = " ".join(f"{k}={v}" for k, v in ENV_KNOBS.items())
    print(f"\nnewswire run --interval {INTERVAL_MINUTES:g} (a cycle every {INTERVAL_MINUTES * 60:g} s), "
          f"4 feeds of demo/sample, {os.cpu_count()} cores, load average {load}; {knobs}")
    for result in results:
        print_table(result)
    if args.csv is not None:
        write_csv(args.csv, results)
        print(f"\nsamples in {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
