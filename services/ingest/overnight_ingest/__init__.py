"""The ingest service: REST API to register datasets and upload images, and the folder watcher.

``create_app`` (in :mod:`overnight_ingest.app`) builds the FastAPI app; ``overnight ingest
serve`` runs it with uvicorn and ``overnight ingest watch`` runs :mod:`overnight_ingest.watcher`.
"""
