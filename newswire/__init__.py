"""newswire: feeds -> pages -> clean text -> topics -> Kafka.

The import package maps the repository's folders:

* ``newswire``             -> ``newswire/``   (CLI, config, pipeline, message contract)
* ``newswire.connectors``  -> ``connectors/`` (HTTP, Kafka, WARC, state store, feed lists)
* ``newswire.processors``  -> ``processors/`` (pure logic: parsing, canonical URLs, extraction, tagging)
* ``newswire.flows``       -> ``flows/``      (Prefect flows and deployments)
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("newswire")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
