"""Kafka publisher and consumer (kafka-python), the only module that talks to the broker.

The publisher sends a batch, waits for every acknowledgement (``acks=all``, idempotent producer) and
reports per item, so the pipeline marks an entry done only after the broker has it. Topics are
created when missing, with the configured partition count, before anything is sent to them.

Security and tuning settings of real clusters (``security_protocol``, ``sasl_*``, ``ssl_*``,
``compression_type``, ``linger_ms``, ``session_timeout_ms``...) pass through ``client_config``; each
client gets the keys it understands.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kerrors
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

from newswire.contract import MAX_TOPIC_NAME

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """The broker cannot be reached or does not acknowledge; the message is one line."""


class KafkaConfigError(ValueError):
    """A bad ``client_config``; the message is one line."""


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "news"
    # Passed to the kafka-python clients (each gets the keys it knows); see the module docstring.
    client_config: dict[str, Any] = field(default_factory=dict)
    partitions: int = 1
    replication_factor: int = 1
    request_timeout_ms: int = 15000
    max_request_size: int = 1048576

    def topic(self, suffix: str) -> str:
        """``{prefix}.{suffix}``, e.g. ``news.articles``."""
        return f"{self.topic_prefix}.{suffix}"


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    # The caller's handle (an entry, a row id) carried back in the SendResult untouched.
    ref: object = None


@dataclass(frozen=True)
class SendResult:
    item: Outgoing
    ok: bool
    # None when ok; else "too-large", "timeout" (no acknowledgement in time), "broker" (the broker
    # answered with an error) or "unreachable" (the broker went away while we waited).
    error: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Received:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    timestamp_ms: int


# Keys we set from KafkaSettings or that would break the "done only after acknowledgement" promise.
_RESERVED = frozenset(
    {
        "bootstrap_servers",
        "acks",
        "enable_idempotence",
        "key_serializer",
        "value_serializer",
        "key_deserializer",
        "value_deserializer",
        "group_id",
        "enable_auto_commit",
        "auto_offset_reset",
        "consumer_timeout_ms",
        "transactional_id",
    }
)
_PRODUCER_KEYS = frozenset(KafkaProducer.DEFAULT_CONFIG)
_CONSUMER_KEYS = frozenset(KafkaConsumer.DEFAULT_CONFIG)
_ADMIN_KEYS = frozenset(KafkaAdminClient.DEFAULT_CONFIG)

_Client = TypeVar("_Client")
_TOO_LARGE = (kerrors.MessageSizeTooLargeError, kerrors.RecordListTooLargeError)
_PROBE_EVERY_S = 1.0


def _client_config(settings: KafkaSettings, known: frozenset[str]) -> dict[str, Any]:
    for key in settings.client_config:
        if key in _RESERVED:
            raise KafkaConfigError(
                f"Kafka client setting {key!r} is managed by newswire and cannot be overridden"
            )
        if key not in _PRODUCER_KEYS | _CONSUMER_KEYS | _ADMIN_KEYS:
            raise KafkaConfigError(
                f"unknown Kafka client setting {key!r} (see kafka-python's client options)"
            )
    return {k: v for k, v in settings.client_config.items() if k in known}


def _base_config(settings: KafkaSettings, client_id: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": client_id,
        "request_timeout_ms": settings.request_timeout_ms,
        "bootstrap_timeout_ms": settings.request_timeout_ms,
        # The default backs off up to 30 s between reconnects; a restarted broker should be found fast.
        "reconnect_backoff_max_ms": 1000,
    }


def _bootstrap_addresses(servers: str) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for item in servers.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            host, port = item, "9092"
        out.append((host.strip("[]"), int(port)))
    return out


def broker_reachable(settings: KafkaSettings, timeout_s: float = 1.0) -> bool:
    """True when at least one bootstrap server accepts a TCP connection (a cheap liveness probe)."""
    for host, port in _bootstrap_addresses(settings.bootstrap_servers):
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return True
        except OSError:
            continue
    return False


def _unreachable(settings: KafkaSettings, why: str = "") -> BrokerUnavailable:
    return BrokerUnavailable(
        f"Kafka broker at {settings.bootstrap_servers} is unreachable{': ' + why if why else ''}"
    )


def _describe(exc: BaseException) -> str:
    name = type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else ""
    # kafka-python's errors already start with their class name ("KafkaTimeoutError: Unable to...").
    if text == name:
        text = ""
    elif text.startswith(name + ": "):
        text = text[len(name) + 2 :]
    return (f"{name}: {text}" if text else name)[:300]


# Beyond the bootstrap timeout, a margin for kafka-python to raise its own (more precise) error first.
_CONSTRUCT_MARGIN_S = 1.0


def _close_quietly(client: object) -> None:
    close = getattr(client, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()


class _ConstructTimeout(Exception):
    """A kafka-python client constructor did not return in time."""


class _Build(Generic[_Client]):
    """One kafka-python client constructor running in its own daemon thread."""

    def __init__(self, key: tuple[str, str], cls: Callable[..., _Client], config: dict[str, Any]) -> None:
        self.key = key
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.finished = False  # under ``lock``: the constructor returned or raised
        self.wanted = True  # under ``lock``: a caller is waiting for the client (else it is closed)
        self.client: _Client | None = None
        self.error: BaseException | None = None
        name = f"newswire-{getattr(cls, '__name__', 'kafka')}-init"
        threading.Thread(target=self._run, args=(cls, config), name=name, daemon=True).start()

    def _run(self, cls: Callable[..., _Client], config: dict[str, Any]) -> None:
        client: _Client | None = None
        error: BaseException | None = None
        try:
            client = cls(**config)
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the waiting thread
            error = exc
        with self.lock:
            self.finished = True
            keep = self.wanted
            if keep:
                self.client, self.error = client, error
        if not keep and client is not None:
            _close_quietly(client)
        self.done.set()
        with _abandoned_lock:
            if _abandoned.get(self.key) is self:
                del _abandoned[self.key]


# Constructors given up on, by client class and configuration, still running. A caller with the same
# configuration waits for that one instead of starting another: a long-running `run` whose broker never
# answers the TLS handshake would otherwise leave one more thread (and its connection retries) behind
# every cycle.
_abandoned: dict[tuple[str, str], _Build[Any]] = {}
_abandoned_lock = threading.Lock()


def _build_with_deadline(cls: Callable[..., _Client], config: dict[str, Any], deadline_s: float) -> _Client:
    """``cls(**config)``, run in a daemon thread; _ConstructTimeout when it takes over ``deadline_s``.

    kafka-python 3.0 does not apply its bootstrap timeout to a TLS handshake: against a broker that
    does not speak TLS (``security_protocol=SSL`` on a plaintext listener) the constructor blocks for
    ever. A daemon thread (not an executor, whose workers are joined at exit) is left behind instead,
    at most one per configuration: the next call with the same one waits for it rather than starting
    another. Should it finish after all, the next caller gets its client, or it is closed.
    """
    key = (getattr(cls, "__qualname__", repr(cls)), repr(sorted(config.items())))
    with _abandoned_lock:
        build: _Build[_Client] | None = _abandoned.pop(key, None)
    adopted = False
    if build is not None:
        with build.lock:
            if not build.finished:  # a finished one closed its client (nobody wanted it): start afresh
                build.wanted = adopted = True
    if build is None or not adopted:
        build = _Build(key, cls, config)
    gave_up = True
    try:
        build.done.wait(deadline_s)
    finally:  # also when Ctrl-C lands during the wait: a client built after it is closed
        with build.lock:
            gave_up = not build.finished
            if gave_up:
                build.wanted = False  # from now on, finishing closes the client it built
    if gave_up:
        with _abandoned_lock:
            _abandoned.setdefault(key, build)
        if build.finished:  # it finished while being filed: it removed nothing, so take it out again
            with _abandoned_lock:
                if _abandoned.get(key) is build:
                    del _abandoned[key]
        raise _ConstructTimeout(f"no bootstrap within {deadline_s:g} s")
    if build.error is not None:
        raise build.error
    assert build.client is not None
    return build.client


def _construct_deadline_s(config: dict[str, Any], settings: KafkaSettings) -> float:
    try:
        bootstrap_ms = float(config.get("bootstrap_timeout_ms") or settings.request_timeout_ms)
    except (TypeError, ValueError):
        bootstrap_ms = float(settings.request_timeout_ms)
    return max(0.0, bootstrap_ms) / 1000 + _CONSTRUCT_MARGIN_S


def _construct(cls: Callable[..., _Client], config: dict[str, Any], settings: KafkaSettings) -> _Client:
    """A kafka-python client; its connection and configuration failures as our one-line errors.

    Bounded in time: a client that has not bootstrapped shortly after its bootstrap timeout (a TLS
    handshake the broker never answers) is reported as an unreachable broker.
    """
    deadline_s = _construct_deadline_s(config, settings)
    try:
        return _build_with_deadline(cls, config, deadline_s)
    except _ConstructTimeout:
        protocol = config.get("security_protocol", "PLAINTEXT")
        raise _unreachable(
            settings,
            f"no Kafka handshake within {deadline_s:g} s (does it speak security_protocol {protocol}?)",
        ) from None
    except (kerrors.KafkaTimeoutError, kerrors.KafkaConnectionError, kerrors.MetadataEmptyBrokerList) as exc:
        why = _describe(exc)
        if isinstance(exc, kerrors.KafkaTimeoutError) and broker_reachable(settings):
            # a port that takes the connection but never answers Kafka's handshake: say so, or the user
            # goes looking for a broker that is down
            why += "; something there accepts connections but does not answer as a Kafka broker (another service on that port?)"
        raise _unreachable(settings, why) from None
    except (kerrors.KafkaConfigurationError, ValueError, TypeError) as exc:
        # e.g. an unknown compression_type, or a value of the wrong type from --kafka-option
        raise KafkaConfigError(f"bad Kafka client settings: {_describe(exc)}") from None
    except kerrors.KafkaError as exc:
        # e.g. SASL authentication failed: the broker is there but will not serve us
        raise BrokerUnavailable(
            f"Kafka broker at {settings.bootstrap_servers} refused the client: {_describe(exc)}"
        ) from None
    except RuntimeError as exc:  # after KafkaError, which is one too
        # kafka-python says so when a compression codec's library is missing
        raise KafkaConfigError(f"bad Kafka client settings: {exc}") from None


def _classify(exc: BaseException) -> str:
    if isinstance(exc, _TOO_LARGE):
        return "too-large"
    if isinstance(exc, kerrors.KafkaTimeoutError):
        return "timeout"
    return "broker"


class Publisher:
    """An idempotent, acks=all producer plus the admin client that creates topics. A context manager."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._producer_config = self._make_producer_config(settings)
        self._admin: KafkaAdminClient | None = None
        self._ensured: set[str] = set()
        self._closed = False
        # Connection refused is known at once; without this check kafka-python would retry for the
        # whole bootstrap timeout before saying so.
        if not broker_reachable(settings):
            raise _unreachable(settings, "no bootstrap server accepts connections")
        self._producer: KafkaProducer | None = self._new_producer()

    @staticmethod
    def _make_producer_config(settings: KafkaSettings) -> dict[str, Any]:
        config = _base_config(settings, "newswire-publisher")
        config.update(
            acks="all",
            enable_idempotence=True,
            # A few ms of linger lets the items of a batch share requests while they are appended;
            # send_batch then flushes, so the last request does not wait out the linger.
            linger_ms=5,
            batch_size=256 * 1024,
            max_request_size=settings.max_request_size,
            # send() blocks at most this long for metadata; an expired batch fails its futures.
            max_block_ms=settings.request_timeout_ms,
            # Topics are created by ensure_topics with the configured partition count, never as a side
            # effect of a metadata request (Tansu ignores this flag and auto-creates anyway).
            allow_auto_create_topics=False,
            delivery_timeout_ms=settings.request_timeout_ms + 1000,
        )
        config.update(_client_config(settings, _PRODUCER_KEYS))
        try:
            linger, delivery, request = (
                int(config[key]) for key in ("linger_ms", "delivery_timeout_ms", "request_timeout_ms")
            )
        except (TypeError, ValueError):
            raise KafkaConfigError(
                "bad Kafka client settings: linger_ms, delivery_timeout_ms and request_timeout_ms "
                "must be integers"
            ) from None
        # kafka-python insists on delivery >= linger + request timeout.
        config["delivery_timeout_ms"] = max(delivery, linger + request)
        return config

    def _new_producer(self) -> KafkaProducer:
        return _construct(KafkaProducer, self._producer_config, self.settings)

    def _admin_client(self) -> KafkaAdminClient:
        if self._admin is None:
            config = _base_config(self.settings, "newswire-admin")
            config.update(_client_config(self.settings, _ADMIN_KEYS))
            self._admin = _construct(KafkaAdminClient, config, self.settings)
        return self._admin

    def ensure_topics(self, names: Iterable[str]) -> None:
        """Create the topics that do not exist yet (partitions/replication from the settings).

        Existing topics are left as they are, whatever their partition count.
        """
        wanted = sorted(set(names) - self._ensured)
        if not wanted:
            return
        too_long = [name for name in wanted if len(name) > MAX_TOPIC_NAME]
        if too_long:  # the broker's refusal would come back as an internal error
            raise KafkaConfigError(
                f"topic {too_long[0][:60]}... is {len(too_long[0])} characters; Kafka allows {MAX_TOPIC_NAME} "
                "(a shorter --topic-prefix or taxonomy slug)"
            )
        admin = self._admin_client()
        try:
            existing = set(admin.list_topics())
            missing = [name for name in wanted if name not in existing]
            if missing:
                self._create(admin, missing)
        except kerrors.KafkaError as exc:
            self._drop_admin()
            if not broker_reachable(self.settings):
                raise _unreachable(self.settings, _describe(exc)) from None
            raise BrokerUnavailable(
                f"could not create topics {', '.join(wanted)}: {_describe(exc)}"
            ) from None
        self._ensured.update(wanted)

    def _create(self, admin: KafkaAdminClient, names: list[str]) -> None:
        topics = [
            NewTopic(name, self.settings.partitions, self.settings.replication_factor) for name in names
        ]
        try:
            admin.create_topics(topics, timeout_ms=self.settings.request_timeout_ms)
        except kerrors.TopicAlreadyExistsError:
            # Another publisher won the race (kafka-python raises for the whole request on the first
            # per-topic error): create the rest one at a time.
            for topic in topics:
                try:
                    admin.create_topics([topic], timeout_ms=self.settings.request_timeout_ms)
                except kerrors.TopicAlreadyExistsError:
                    pass

    def _drop_admin(self) -> None:
        if self._admin is not None:
            # Closing a broken client must not mask the error that made us drop it.
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None

    def send_batch(self, items: Sequence[Outgoing]) -> list[SendResult]:
        """Send every item, wait for every acknowledgement, return one result per item, in order.

        A failure that a fresh producer may cure (the broker restarted, a timeout) makes the publisher
        recreate its producer once and resend the failed items once. Raises BrokerUnavailable when
        the broker is unreachable and nothing in the batch was acknowledged.
        """
        if not items:
            return []
        if self._closed:
            raise RuntimeError("Publisher is closed")
        if self._producer is None:  # dropped after the broker went away; try again now
            self._recreate()
        results = self._attempt(list(items))
        retry = [i for i, r in enumerate(results) if not r.ok and r.error != "too-large"]
        if retry:
            log.info(
                "kafka: %d of %d sends failed (%s); recreating the producer and retrying once",
                len(retry),
                len(items),
                results[retry[0]].detail,
            )
            try:
                self._recreate()
                again = self._attempt([items[i] for i in retry])
            except BrokerUnavailable:
                if not any(r.ok for r in results):
                    raise
                # Some items were acknowledged: the caller must learn which, so report, don't raise.
                return results
            for i, result in zip(retry, again, strict=True):
                results[i] = result
        failed = [r for r in results if not r.ok and r.error != "too-large"]
        if failed and not any(r.ok for r in results) and not broker_reachable(self.settings):
            self._abandon()
            raise _unreachable(self.settings, failed[0].detail or "")
        return results

    def _recreate(self) -> None:
        # An idempotent producer that saw the broker lose its producer id (a restart) fails every
        # later send; only a new producer (new InitProducerId) recovers. Topics may be gone too (a
        # memory-only broker), so they are checked again.
        self._abandon()
        self._drop_admin()
        self._ensured.clear()
        if not broker_reachable(self.settings):
            raise _unreachable(self.settings, "no bootstrap server accepts connections")
        self._producer = self._new_producer()

    def _abandon(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=0)
        except kerrors.KafkaError:
            # close() flushes first and a zero timeout raises when batches are pending: drop them.
            producer._sender.force_close()
            producer._sender.join(1.0)
            with contextlib.suppress(kerrors.KafkaError):
                producer.close(timeout=0)

    def _attempt(self, items: list[Outgoing]) -> list[SendResult]:
        self.ensure_topics(item.topic for item in items)
        producer = self._producer
        assert producer is not None
        futures: list[Any] = []
        early: dict[int, SendResult] = {}
        stalled: SendResult | None = None
        for index, item in enumerate(items):
            future = None
            if stalled is not None:
                early[index] = SendResult(item, False, stalled.error, stalled.detail)
            else:
                try:
                    future = producer.send(
                        item.topic, value=item.value, key=item.key, headers=list(item.headers)
                    )
                except kerrors.KafkaError as exc:
                    # Too large is known before sending; the rest of the batch goes on regardless.
                    early[index] = SendResult(item, False, _classify(exc), _describe(exc))
                    if isinstance(exc, kerrors.KafkaTimeoutError):
                        # No metadata within max_block_ms: every further send() would block as long.
                        stalled = early[index]
            futures.append(future)
        return self._collect(producer, items, futures, early)

    def _collect(
        self, producer: KafkaProducer, items: list[Outgoing], futures: list[Any], early: dict[int, SendResult]
    ) -> list[SendResult]:
        # kafka-python fails a batch itself after delivery_timeout_ms; the extra second is a safety net.
        deadline = time.monotonic() + self._producer_config["delivery_timeout_ms"] / 1000 + 1.0
        next_probe = time.monotonic() + _PROBE_EVERY_S
        gone = False
        pending = [f for f in futures if f is not None]
        while pending and not gone and time.monotonic() < deadline:
            # flush() sends what is still lingering at once (we wait for everything anyway, so the
            # linger would be pure delay); short slices notice a vanished broker in about a second
            # instead of after the whole delivery timeout. The outcome is read from the futures.
            with contextlib.suppress(kerrors.KafkaError):
                producer.flush(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
            pending = [f for f in pending if not f.is_done]
            if pending and time.monotonic() >= next_probe:
                next_probe = time.monotonic() + _PROBE_EVERY_S
                gone = not broker_reachable(self.settings, timeout_s=0.5)
        results: list[SendResult] = []
        for index, (item, future) in enumerate(zip(items, futures, strict=True)):
            if future is None:
                results.append(early[index])
            elif future.is_done and future.succeeded():
                results.append(SendResult(item, True))
            elif future.is_done:
                exc = future.exception
                results.append(SendResult(item, False, _classify(exc), _describe(exc)))
            elif gone:
                results.append(
                    SendResult(item, False, "unreachable", "the broker stopped accepting connections")
                )
            else:
                results.append(
                    SendResult(item, False, "timeout", "no acknowledgement within the delivery timeout")
                )
        return results

    def close(self) -> None:
        self._closed = True
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=self.settings.request_timeout_ms / 1000)
            except kerrors.KafkaError:
                producer._sender.force_close()
        self._drop_admin()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_JOIN_TIMEOUT_S = 30.0
_TOPIC_RECHECK_S = 1.0
# How often a reader checks that a bootstrap server still accepts connections (kafka-python itself
# retries a lost broker forever without a word).
_BROKER_PROBE_S = 5.0


def consume(
    settings: KafkaSettings,
    topics: list[str],
    *,
    group: str | None = None,
    from_beginning: bool = False,
    timeout_s: float | None = None,
    max_messages: int | None = None,
) -> Iterator[Received]:
    """Yield messages from ``topics`` until ``max_messages`` were yielded or ``timeout_s`` passed
    without a new one (None: forever).

    Without ``group`` every partition is assigned directly (no join, no commits): ``from_beginning``
    starts at the earliest offset, else at the end as it is when the partitions are assigned; a
    topic that does not exist yet is picked up, from its start, once it appears. With ``group`` the
    consumer joins that group and commits, per partition, one past the last message yielded (before
    each further poll and when the iteration ends, also when the caller stops early): a fetched
    message that was never yielded is read again by the group's next consumer. Committed offsets
    win, and ``from_beginning`` only decides where a group without them starts (earliest or latest). The
    idle clock starts once partitions are assigned, so a slow group join does not eat it; a join
    that has not finished after 30 s (plus ``timeout_s``) ends the iteration.
    """
    config = _base_config(settings, "newswire-consumer")
    config.update(
        # Reading must not create topics (a broker that auto-creates would pick its own partition count).
        allow_auto_create_topics=False,
        max_partition_fetch_bytes=max(1048576, settings.max_request_size),
        fetch_max_bytes=max(52428800, settings.max_request_size),
    )
    if group is not None and "max_poll_interval_ms" not in settings.client_config:
        # Kafka's default before 3.0 (kafka-python's is 45 s against brokers >= 3.0). Some brokers hold a
        # group's first join for about half of it: Tansu, the dev broker, took 23 s to hand `tail --group`
        # its partitions at 45 s, about 6 s at 10 s. The heartbeat (3 s) keeps a live consumer in;
        # --kafka-option overrides. Not with the user's max_poll_interval_ms: kafka-python derives the
        # session from it for brokers older than 0.10.1, and refuses an explicit session beside it there.
        config.update(session_timeout_ms=10_000)
    config.update(_client_config(settings, _CONSUMER_KEYS))
    if group is not None:
        config.update(
            group_id=group,
            # Auto-commit (and close's autocommit) would commit the position, which is past every
            # record fetched, yielded or not: _GroupOffsets commits what was handed out instead.
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
        )
    else:
        config.update(group_id=None, enable_auto_commit=False)
    if not broker_reachable(settings):
        raise _unreachable(settings, "no bootstrap server accepts connections")
    consumer = _construct(KafkaConsumer, config, settings)
    offsets: _GroupOffsets | None = None
    watch = _BrokerWatch(settings)
    try:
        if group is not None:
            offsets = _GroupOffsets(consumer, group, settings.request_timeout_ms)
            _warn_missing(consumer, topics)
            consumer.subscribe(topics)
            yield from _poll_loop(consumer, None, timeout_s, max_messages, offsets, watch)
        else:
            manual = _ManualAssignment(consumer, topics)
            manual.refresh(at_beginning=from_beginning)
            _warn_missing(consumer, manual.missing)
            yield from _poll_loop(consumer, manual, timeout_s, max_messages, None, watch)
    finally:
        try:
            if offsets is not None:
                offsets.commit()
        finally:
            consumer.close(autocommit=False)


class _BrokerWatch:
    """Says once (a warning) when the broker stops accepting connections during a read, and once when
    it is back; kafka-python keeps retrying either way."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.down = False
        self.next_probe = time.monotonic() + _BROKER_PROBE_S

    def check(self, now: float) -> None:
        if now < self.next_probe:
            return
        self.next_probe = now + _BROKER_PROBE_S
        up = broker_reachable(self.settings)
        if not up and not self.down:
            log.warning("%s; waiting for it", _unreachable(self.settings, "no bootstrap server accepts connections"))
        elif up and self.down:
            log.warning("Kafka broker at %s is reachable again", self.settings.bootstrap_servers)
        self.down = not up


class _GroupOffsets:
    """Per partition, one past the last record handed to the caller; committed explicitly."""

    def __init__(self, consumer: KafkaConsumer, group: str, timeout_ms: int) -> None:
        self.consumer = consumer
        self.group = group
        self.timeout_ms = timeout_ms
        self.pending: dict[TopicPartition, OffsetAndMetadata] = {}

    def handed_out(self, topic: str, partition: int, offset: int, leader_epoch: int) -> None:
        self.pending[TopicPartition(topic, partition)] = OffsetAndMetadata(offset + 1, "", leader_epoch)

    def commit(self) -> None:
        if not self.pending:
            return
        # A partition taken away by a rebalance is another member's now: committing it could fail
        # the whole request (its records may be read twice, never lost).
        owned = self.consumer.assignment()
        self.pending = {tp: meta for tp, meta in self.pending.items() if tp in owned}
        if not self.pending:
            return
        try:
            self.consumer.commit(dict(self.pending), timeout_ms=self.timeout_ms)
        except kerrors.KafkaError as exc:
            # Kept for the next attempt; a group that never gets them reads those records again.
            log.warning("kafka: could not commit the offsets of group %s: %s", self.group, _describe(exc))
            return
        self.pending.clear()


def _warn_missing(consumer: KafkaConsumer, topics: list[str]) -> None:
    """Say once which topics the broker does not have: reading waits for them to appear (a topic is
    created by the first run that publishes to it), which a typo in the name would make wait forever."""
    try:
        existing = consumer.topics()
    except kerrors.KafkaError as exc:
        log.debug("kafka: cannot list the topics: %s", _describe(exc))
        return
    for topic in topics:
        if topic in existing:
            continue
        family = topic.rpartition(".")[0]
        near = sorted(t for t in existing if family and t.rpartition(".")[0] == family)
        shown = ", ".join(near[:12]) + (", ..." if len(near) > 12 else "")
        log.warning(
            "topic %s does not exist on the broker (yet): waiting for it to appear%s",
            topic,
            f" (it has {shown})" if near else "",
        )


class _ManualAssignment:
    """Direct partition assignment, growing as missing topics appear."""

    def __init__(self, consumer: KafkaConsumer, topics: list[str]) -> None:
        self.consumer = consumer
        self.missing = list(dict.fromkeys(topics))
        self.assigned: list[TopicPartition] = []
        self.next_check = 0.0

    def refresh(self, at_beginning: bool) -> None:
        self.next_check = time.monotonic() + _TOPIC_RECHECK_S
        new: list[TopicPartition] = []
        still_missing: list[str] = []
        for topic in self.missing:
            try:
                partitions = self.consumer.partitions_for_topic(topic)
            except kerrors.KafkaError as exc:  # the broker went away: still missing, checked again
                log.debug("kafka: cannot read the partitions of %s: %s", topic, _describe(exc))
                partitions = None
            if partitions:
                new.extend(TopicPartition(topic, p) for p in sorted(partitions))
            else:
                still_missing.append(topic)
        self.missing = still_missing
        if not new:
            return
        self.assigned.extend(new)
        self.consumer.assign(self.assigned)  # keeps the positions of partitions already assigned
        if at_beginning:
            self.consumer.seek_to_beginning(*new)
        else:
            self.consumer.seek_to_end(*new)

    def poll_missing(self) -> None:
        if self.missing and time.monotonic() >= self.next_check:
            # Everything in a topic created after we started is new: read it from its start.
            self.refresh(at_beginning=True)


def _poll_loop(
    consumer: KafkaConsumer,
    manual: _ManualAssignment | None,
    timeout_s: float | None,
    max_messages: int | None,
    offsets: _GroupOffsets | None,
    watch: _BrokerWatch | None = None,
) -> Iterator[Received]:
    started = time.monotonic()
    idle_since: float | None = started if manual is not None else None
    count = 0
    if max_messages is not None and max_messages <= 0:
        return
    while True:
        now = time.monotonic()
        if idle_since is None and consumer.assignment():
            idle_since = now  # joined the group: start the idle clock now
        if watch is not None:
            watch.check(now)
        if timeout_s is not None:
            timed_out = (idle_since is not None and now - idle_since >= timeout_s) or (
                idle_since is None and now - started >= timeout_s + _JOIN_TIMEOUT_S
            )
            if timed_out and watch is not None and (watch.down or not broker_reachable(watch.settings)):
                # idle because the broker is gone, not because nothing came: not a clean end
                raise _unreachable(watch.settings, "no bootstrap server accepts connections")
            if timed_out:
                return
        if manual is not None:
            manual.poll_missing()
        if offsets is not None:
            offsets.commit()  # the caller is done with everything yielded so far
        wait_s = 0.2 if timeout_s is None else min(0.2, max(0.01, timeout_s))
        try:
            batches = consumer.poll(timeout_ms=int(wait_s * 1000))
        except kerrors.KafkaError as exc:
            if not exc.retriable:
                raise
            # the broker went away (a group member sees it here): kafka-python reconnects; the watch says it
            log.debug("kafka: poll failed: %s", _describe(exc))
            time.sleep(wait_s)
            continue
        for records in batches.values():
            for record in records:
                if offsets is not None:
                    # Recorded before the yield: a caller that stops at this record has received it.
                    offsets.handed_out(record.topic, record.partition, record.offset, record.leader_epoch)
                yield Received(
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    key=record.key,
                    value=record.value if record.value is not None else b"",
                    headers=[(name, value if value is not None else b"") for name, value in record.headers],
                    timestamp_ms=record.timestamp,
                )
                count += 1
                if max_messages is not None and count >= max_messages:
                    return
            idle_since = time.monotonic()
