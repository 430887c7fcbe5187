"""``newswire version``, ``db upgrade`` and ``metrics serve``."""

from __future__ import annotations

from typing import Annotated

import typer

from newswire import __version__
from newswire.cli._common import (
    StateDirOpt,
    StateUrlOpt,
    UserError,
    VerboseOpt,
    app,
    db_app,
    metrics_app,
    multiproc_dir,
    start,
    url_host,
)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"newswire {__version__}")



@db_app.command("upgrade")
def db_upgrade(state_dir: StateDirOpt = None, state_url: StateUrlOpt = None, verbose: VerboseOpt = 0) -> None:
    """Create the state store or bring its schema to this version (every run does it too)."""
    base = start(verbose, state_dir)
    from newswire.connectors.state import StateStore

    with StateStore.open(base, state_url) as store:
        applied, version = store.upgrade()
        where = store.describe()
    typer.echo(f"state store {where}: schema version {version} ({applied} migrations applied)")


@metrics_app.command("serve")
def metrics_serve(
    port: Annotated[int, typer.Option("--port", envvar="NEWSWIRE_METRICS_PORT", help="Port of /metrics.")] = 9464,
    addr: Annotated[
        str,
        typer.Option(
            "--addr",
            "--metrics-addr",  # the name `run` gives it, kept so either spelling works
            envvar="NEWSWIRE_METRICS_ADDR",
            help="Address the endpoint binds.",
        ),
    ] = "0.0.0.0",
    verbose: VerboseOpt = 0,
) -> None:
    """Serve the metrics that processes (a Prefect worker's flow runs) write to $PROMETHEUS_MULTIPROC_DIR."""
    start(verbose, None)
    import threading

    from newswire.metrics import MetricsError, serve_metrics

    shared = multiproc_dir(writes=False)
    if shared is None:
        raise UserError("set PROMETHEUS_MULTIPROC_DIR to the directory the workers' flow runs write metrics to")
    try:
        server = serve_metrics(port, addr)
    except MetricsError as exc:
        raise UserError(str(exc)) from None
    typer.echo(
        f"newswire: metrics of {shared} on http://{url_host(addr)}:{server.port}/metrics (Ctrl-C stops)", err=True
    )
    threading.Event().wait()
