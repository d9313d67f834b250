"""HTTP layer of the ingest service: dependencies, schemas and routes."""
