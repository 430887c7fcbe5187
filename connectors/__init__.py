"""newswire.connectors (folder `connectors/`)."""
