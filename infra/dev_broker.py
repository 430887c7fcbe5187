#!/usr/bin/env python3
"""Run the Tansu dev broker (memory storage) on loopback in the foreground until Ctrl-C.

    python infra/dev_broker.py --port 9092 [--pidfile broker.pid] [--log tansu.log]

A thin front end of ``newswire.devbroker.DevBroker``; tests and the demo use that class directly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

# Lets the script run from a checkout that was never `pip install`ed (kafka-python still needed).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newswire.devbroker import DevBroker, DevBrokerError


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Tansu Kafka-protocol dev broker on 127.0.0.1 (memory only)")
    parser.add_argument("--port", type=int, default=9092, help="loopback port to listen on (default 9092)")
    parser.add_argument("--pidfile", type=Path, help="write the broker's process id here while it runs")
    parser.add_argument("--log", type=Path, help="append Tansu's own output to this file")
    return parser.parse_args(argv)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if not 0 < args.port < 65536:
        print(f"error: --port {args.port} is not a TCP port", file=sys.stderr)
        return 2
    broker = DevBroker(args.port, log=args.log)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        broker.start()
        if args.pidfile:
            args.pidfile.write_text(f"{broker.pid}\n")
        print(f"Tansu dev broker ready on {broker.bootstrap} (memory storage; Ctrl-C stops it)", flush=True)
        while broker.running:
            time.sleep(0.5)
        print("error: tansu exited unexpectedly", file=sys.stderr)
        return 1
    except DevBrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
        return 0
    finally:
        broker.stop()
        if args.pidfile:
            args.pidfile.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
