"""Prometheus metrics of the poll cycle (prometheus-client), served by every worker on ``--metrics-port``.

What a run records (names as scraped):

* ``newswire_polls_total{outcome}``: feed polls by outcome: the HTTP status (``200``, ``304``...) or,
  for a failed poll, its reason code (``timeout``, ``http-500``, ``ill-formed``...).
* ``newswire_articles_published_total``: articles the broker acknowledged.
* ``newswire_duplicates_skipped_total``: entries skipped as already published (or carried twice).
* ``newswire_dead_letters_total{stage}``: dead letters the broker acknowledged, by stage.
* ``newswire_fetch_seconds{kind}`` (feed, page), ``newswire_extract_seconds``, ``newswire_publish_seconds``
  (one broker batch): latency histograms.
* ``newswire_most_overdue_feed_seconds``: how late the most overdue feed of the state is (0: none late).
* ``newswire_cycles_total{outcome}``: poll cycles (one run of the due feeds) by how they ended:
  ``completed``, ``incomplete`` (some articles not acknowledged: retried later), ``unavailable`` (the
  broker or the state store could not be reached), ``error`` (an internal error).
* ``newswire_last_completed_cycle_timestamp_seconds``: when a cycle last completed (Unix time; absent
  before the first). A broker outage shows here, not as a quiet news day:
  ``time() - newswire_last_completed_cycle_timestamp_seconds > 900`` is an alert.

A Prefect process worker runs each flow run in a child process. Set ``PROMETHEUS_MULTIPROC_DIR`` (an
empty directory, which must exist: the CLI refuses a name that is no directory) in the worker's environment and serve it with ``newswire metrics serve``: the children
write their samples there and one endpoint sums them (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from time import perf_counter
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class Metrics:
    polls: Counter
    published: Counter
    duplicates: Counter
    dead_letters: Counter
    fetch_seconds: Histogram
    extract_seconds: Histogram
    publish_seconds: Histogram
    most_overdue: Gauge
    cycles: Counter
    last_completed: Gauge

    def poll(self, outcome: str) -> None:
        self.polls.labels(outcome=outcome).inc()

    def cycle_ended(self, outcome: str) -> None:
        """``completed``, ``incomplete``, ``unavailable`` or ``error``."""
        self.cycles.labels(outcome=outcome).inc()
        if outcome == "completed":
            self.last_completed.set_to_current_time()

    def dead_letter(self, stage: str, count: int = 1) -> None:
        if count:
            self.dead_letters.labels(stage=stage).inc(count)

    @contextmanager
    def timed(self, histogram: Histogram, **labels: str) -> Iterator[None]:
        started = perf_counter()
        try:
            yield
        finally:
            (histogram.labels(**labels) if labels else histogram).observe(perf_counter() - started)


def _build(registry: CollectorRegistry) -> Metrics:
    return Metrics(
        polls=Counter("newswire_polls", "Feed polls by outcome (HTTP status or error reason)", ["outcome"],
                      registry=registry),
        published=Counter("newswire_articles_published", "Articles acknowledged by the broker", registry=registry),
        duplicates=Counter("newswire_duplicates_skipped", "Entries skipped as already published",
                           registry=registry),
        dead_letters=Counter("newswire_dead_letters", "Dead letters acknowledged by the broker, by stage",
                             ["stage"], registry=registry),
        fetch_seconds=Histogram("newswire_fetch_seconds", "Fetch latency (feeds and pages)", ["kind"],
                                buckets=_LATENCY, registry=registry),
        extract_seconds=Histogram("newswire_extract_seconds", "Extraction latency of one page", buckets=_LATENCY,
                                  registry=registry),
        publish_seconds=Histogram("newswire_publish_seconds", "Latency of one acknowledged broker batch",
                                  buckets=_LATENCY, registry=registry),
        # in multiprocess mode the endpoint reports the largest value any process last set
        most_overdue=Gauge("newswire_most_overdue_feed_seconds", "Age of the most overdue feed (0: none late)",
                           registry=registry, multiprocess_mode="livemax"),
        cycles=Counter("newswire_cycles", "Poll cycles by how they ended (completed, incomplete, unavailable, "
                       "error)", ["outcome"], registry=registry),
        # "max": a served run's cycles run in child processes that are gone by the next scrape
        last_completed=Gauge("newswire_last_completed_cycle_timestamp_seconds",
                             "When a poll cycle last completed (Unix time)", registry=registry,
                             multiprocess_mode="max"),
    )


_lock = threading.Lock()
_metrics: Metrics | None = None


def metrics() -> Metrics:
    """The process's metrics, created on first use in the default registry."""
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = _build(REGISTRY)
        return _metrics


def poll_outcome(status: int | None, error: str | None) -> str:
    """The ``outcome`` label of one poll: its reason code when it failed, else its HTTP status."""
    if error:
        return error
    return str(status) if status else "unknown"


class MetricsError(RuntimeError):
    """The metrics endpoint cannot be served (one line)."""


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(port: int, addr: str = "0.0.0.0") -> MetricsServer:
    """Serve ``/metrics`` in a daemon thread (port 0: any free port). With ``PROMETHEUS_MULTIPROC_DIR``
    set, the endpoint sums the samples every process wrote there."""
    registry: CollectorRegistry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    try:
        server, thread = start_http_server(port, addr=addr, registry=registry)
    except OSError as exc:
        raise MetricsError(f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}") from None
    metrics()  # the families exist (at zero) from the first scrape on
    return MetricsServer(server, thread)
