"""The ingest API's routers."""
