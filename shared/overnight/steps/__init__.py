"""Pipeline steps: pure image-analysis functions and their plug-in wrappers."""
