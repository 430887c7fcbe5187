"""newswire.processors (folder `processors/`)."""
