"""Consumer groups commit only what was handed out; a broker that never completes the handshake is an
unreachable broker, not a hang. A real Tansu broker on loopback (no mocks)."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from newswire.connectors.kafka import BrokerUnavailable, KafkaSettings, Outgoing, Publisher, consume
from newswire.devbroker import DevBroker
from tests.conftest import FAST_GROUP_CONFIG
from tests.support.cli import NEWSWIRE, newswire, one_line_error

pytestmark = pytest.mark.integration

SettingsFor = Callable[..., KafkaSettings]


def items(topic: str, n: int, start: int = 0) -> list[Outgoing]:
    return [
        Outgoing(topic=topic, key=f"id-{i}".encode(), value=f'{{"n": {i}}}'.encode(), headers=[])
        for i in range(start, start + n)
    ]


def keys(start: int, stop: int) -> list[bytes]:
    return [f"id-{i}".encode() for i in range(start, stop)]


def publish(settings: KafkaSettings, topic: str, n: int) -> None:
    with Publisher(settings) as publisher:
        # One batch: the items share record batches, so the consumer fetches them in one poll.
        assert all(r.ok for r in publisher.send_batch(items(topic, n)))


def group_read(settings: KafkaSettings, topic: str, group: str, **kwargs: object) -> list[bytes]:
    return [
        m.key or b""
        for m in consume(settings, [topic], group=group, from_beginning=True, timeout_s=1.0, **kwargs)  # type: ignore[arg-type]
    ]


def test_group_with_max_commits_only_the_messages_handed_out(kafka_settings: KafkaSettings) -> None:
    # The old code committed the consumer's position (all 10 fetched) after yielding 2: the group's
    # next run got nothing.
    topic, group = kafka_settings.topic("articles"), f"g-{uuid.uuid4().hex[:8]}"
    publish(kafka_settings, topic, 10)
    assert group_read(kafka_settings, topic, group, max_messages=2) == keys(0, 2)
    assert group_read(kafka_settings, topic, group, max_messages=3) == keys(2, 5)
    assert group_read(kafka_settings, topic, group) == keys(5, 10)
    assert group_read(kafka_settings, topic, group) == []


def test_group_reader_that_stops_early_loses_nothing(kafka_settings: KafkaSettings) -> None:
    # A caller that breaks off (as Ctrl-C in `newswire tail` does) closes the iterator mid-batch.
    topic, group = kafka_settings.topic("articles"), f"g-{uuid.uuid4().hex[:8]}"
    publish(kafka_settings, topic, 8)
    got: list[bytes] = []
    for message in consume(kafka_settings, [topic], group=group, from_beginning=True, timeout_s=1.0):
        got.append(message.key or b"")
        if len(got) == 3:
            break
    assert got == keys(0, 3)
    assert group_read(kafka_settings, topic, group) == keys(3, 8)


def test_group_commits_per_partition(broker: DevBroker, settings_for: SettingsFor) -> None:
    settings = settings_for(broker.bootstrap, partitions=3)
    topic, group = settings.topic("articles"), f"g-{uuid.uuid4().hex[:8]}"
    publish(settings, topic, 30)
    first = group_read(settings, topic, group, max_messages=4)
    rest = group_read(settings, topic, group)
    assert len(first) == 4
    # Every message exactly once across the two runs: nothing skipped, nothing read twice.
    assert sorted(first + rest) == sorted(keys(0, 30))


def test_cli_tail_group_max_then_rest(kafka_settings: KafkaSettings) -> None:
    topic, group = kafka_settings.topic("articles"), f"g-{uuid.uuid4().hex[:8]}"
    publish(kafka_settings, topic, 6)
    common = [
        "--bootstrap-servers", kafka_settings.bootstrap_servers,
        "--topic-prefix", kafka_settings.topic_prefix,
        "--group", group, "--from-beginning", "--json", "--timeout", "1",
        # A fast group join, as in kafka_settings (Kafka's 10 s session timeout makes each run slow).
        "--kafka-option", "session_timeout_ms=2000", "--kafka-option", "heartbeat_interval_ms=500",
    ]  # fmt: skip

    def tail(*extra: str) -> list[str]:
        done = newswire("tail", "articles", *common, *extra, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    assert tail("--max", "2") == ['{"n": 0}', '{"n": 1}']
    assert tail() == [f'{{"n": {i}}}' for i in range(2, 6)]


# -- a broker that never completes the handshake ----------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback TCP server that accepts connections, reads, and never answers (no TLS, no Kafka)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)  # kept open, never answered

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        listener.close()
        for conn in accepted:
            conn.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("protocol", ["SSL", "PLAINTEXT"])
def test_silent_server_is_unreachable_not_a_hang(silent_server: str, protocol: str) -> None:
    # kafka-python 3.0 waits for ever on a TLS handshake nobody answers (bootstrap timeout ignored).
    settings = KafkaSettings(
        bootstrap_servers=silent_server,
        request_timeout_ms=1000,
        client_config={"security_protocol": protocol},
    )
    for attempt in (
        lambda: Publisher(settings),
        lambda: next(consume(settings, ["news.articles"], timeout_s=1.0)),
    ):
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match=f"{silent_server} is unreachable") as raised:
            attempt()
        assert time.monotonic() - started < 5.0
        message = str(raised.value)
        assert "\n" not in message
        assert "KafkaTimeoutError: KafkaTimeoutError" not in message
        # not a broker that is down: something answers the port (it said only "unreachable")
        assert "does not answer as a Kafka broker" in message or "no Kafka handshake within" in message, message


@pytest.mark.timeout(60)
def test_ssl_against_the_plaintext_broker_is_unreachable_not_a_hang(
    broker: DevBroker, settings_for: SettingsFor
) -> None:
    settings = settings_for(
        broker.bootstrap,
        request_timeout_ms=1000,
        client_config={"security_protocol": "SSL", "session_timeout_ms": 2000},
    )
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="unreachable.*security_protocol SSL"):
        Publisher(settings)
    with pytest.raises(BrokerUnavailable, match="unreachable"):
        next(consume(settings, [settings.topic("articles")], group="g-ssl", timeout_s=1.0))
    assert time.monotonic() - started < 8.0

    # a long-running `run` retries each cycle: the handshake threads given up on do not pile up
    def hung() -> int:
        return sum(1 for t in threading.enumerate() if t.name == "newswire-KafkaProducer-init")

    before = hung()
    for _ in range(3):
        with pytest.raises(BrokerUnavailable, match="unreachable"):
            Publisher(settings)
    assert hung() <= before  # (one an earlier test left may end meanwhile)


@pytest.mark.timeout(60)
def test_cli_tail_with_ssl_against_plaintext_broker_exits_3(broker: DevBroker) -> None:
    args = [
        "tail", "articles", "--timeout", "1",
        "--bootstrap-servers", broker.bootstrap,
        "--kafka-option", "security_protocol=SSL",
        "--kafka-option", "bootstrap_timeout_ms=1500",
    ]  # fmt: skip
    started = time.monotonic()
    done = newswire(*args, timeout=45)
    assert done.returncode == 3, done.stderr
    assert f"{broker.bootstrap} is unreachable" in one_line_error(done)
    assert time.monotonic() - started < 20.0


# -- a broker that goes away while tail reads --------------------------------------------------------


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["assigned", "topic-not-created-yet", "group"])
def test_cli_tail_whose_broker_dies_exits_3_in_one_line(
    private_broker: DevBroker, settings_for: SettingsFor, mode: str
) -> None:
    # It exited 0 as if the topic had gone quiet (assigned partitions), or 70 with an internal error and
    # a traceback in the log (a topic still awaited, a group member).
    settings = settings_for(private_broker.bootstrap)
    if mode != "topic-not-created-yet":
        publish(settings, settings.topic("articles"), 3)
    args = [
        NEWSWIRE, "tail", "articles", "--from-beginning", "--json", "--timeout", "3",
        "--bootstrap-servers", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix,
    ]  # fmt: skip
    if mode == "group":
        args += ["--group", f"g-{uuid.uuid4().hex[:8]}"]
        args += [f"--kafka-option={key}={value}" for key, value in FAST_GROUP_CONFIG.items()]
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        if mode == "topic-not-created-yet":
            time.sleep(1.5)
            lines = []
        else:
            lines = [proc.stdout.readline() for _ in range(3)]
        private_broker.stop(grace_s=0)
        out, err = proc.communicate(timeout=60)
    assert [line for line in lines if line.strip()] == [f'{{"n": {i}}}\n' for i in range(len(lines))]
    assert out == ""
    assert proc.returncode == 3, err
    assert "Traceback" not in err and "internal error" not in err
    last = err.strip().splitlines()[-1]
    assert last == f"newswire: error: Kafka broker at {settings.bootstrap_servers} is unreachable: " \
        "no bootstrap server accepts connections", err


@pytest.mark.parametrize("group", [None, "typo-group"])
def test_cli_tail_of_a_topic_the_broker_lacks_says_so_and_names_its_neighbours(
    kafka_settings: KafkaSettings, group: str | None
) -> None:
    # A typo ("chinaa") waited without a word, forever without --timeout.
    publish(kafka_settings, kafka_settings.topic("topic.china"), 1)
    extra = ["--group", f"{group}-{uuid.uuid4().hex[:6]}"] if group else []
    done = newswire(
        "tail", "chinaa", "--bootstrap-servers", kafka_settings.bootstrap_servers,
        "--topic-prefix", kafka_settings.topic_prefix, "--timeout", "1", *extra, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"topic {kafka_settings.topic_prefix}.topic.chinaa does not exist on the broker (yet)" in lines[0]
    assert f"(it has {kafka_settings.topic_prefix}.topic.china)" in lines[0]


def test_cli_tail_of_a_bootstrap_server_without_a_port_number_is_a_user_error() -> None:
    done = newswire("tail", "china", "--bootstrap-servers", "127.0.0.1:notaport", "--timeout", "1", timeout=60)
    assert done.returncode == 2
    assert "the port must be a number" in one_line_error(done)
