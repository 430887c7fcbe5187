"""The ``newswire`` command. Every option also reads an environment variable ``NEWSWIRE_<NAME>``.

Errors a user can cause end in one line on stderr and a non-zero exit; internal errors print one line
and keep their traceback in the log file (``<state dir>/newswire.log``).

One module per command or group; importing them registers their commands on ``app``, in the order
``newswire --help`` lists them. Each imports its heavy dependencies inside the command, so starting
the CLI stays cheap.
"""

from newswire.cli import _run, _replay, _tail, _admin, _tagging, _feeds  # noqa: F401, I001  (registers the commands)
from newswire.cli._common import EXIT_INTERNAL, EXIT_UNAVAILABLE, EXIT_USER, app
from newswire.cli._main import main

__all__ = ["EXIT_INTERNAL", "EXIT_UNAVAILABLE", "EXIT_USER", "app", "main"]
