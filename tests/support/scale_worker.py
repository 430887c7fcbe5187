"""One newswire worker process for the scale-out tests and benchmark.

``python -m tests.support.scale_worker SETTINGS_JSON FEEDS_FILE [--metrics-port P] [--linger]``: the
settings (``settings_to_params`` form) and the feed list; polls with :func:`newswire.live.run_leased`
(leases, claims), prints the run summary as one JSON line, and with ``--linger`` keeps serving its
metrics on 127.0.0.1 until its standard input closes. ``--barrier``: print ``ready`` once imported, then
wait for a line on standard input, so that several workers start polling together.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from newswire.config import settings_from_params
from newswire.connectors.feedlist import read_feed_list
from newswire.live import run_leased
from newswire.metrics import serve_metrics


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("settings")
    parser.add_argument("feeds")
    parser.add_argument("--metrics-port", type=int)
    parser.add_argument("--linger", action="store_true")
    parser.add_argument("--all", action="store_true", help="poll every feed (once), not only the due ones")
    parser.add_argument("--barrier", action="store_true", help="print 'ready', start on a line on stdin")
    args = parser.parse_args()
    settings = settings_from_params(json.loads(args.settings))
    server = serve_metrics(args.metrics_port, "127.0.0.1") if args.metrics_port is not None else None
    if args.barrier:  # workers start together, whatever their import times
        print("ready", flush=True)
        sys.stdin.readline()
    summary = run_leased(settings, read_feed_list(Path(args.feeds)), poll_all=args.all)
    print(json.dumps({**asdict(summary), "metrics_port": server.port if server else None}), flush=True)
    if args.linger:
        sys.stdin.read()


if __name__ == "__main__":
    main()
