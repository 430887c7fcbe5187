"""newswire.flows (folder `flows/`)."""
