"""HTTP layer of the QC service: dependencies and routes."""
