"""Settings and security of the ingest service."""
