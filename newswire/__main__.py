"""``python -m newswire`` runs the same command line as the ``newswire`` script."""

from newswire.cli import main

main()
