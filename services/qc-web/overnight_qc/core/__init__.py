"""Settings, security, templates and shared state of the QC service."""
