"""The QC service's routes, one module per page family."""
