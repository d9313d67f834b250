"""The pipeline files shipped with overnight (package data)."""
