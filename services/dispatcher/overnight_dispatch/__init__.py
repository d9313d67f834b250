"""The Kubernetes dispatcher: one ``batch/v1`` Job per queued image (``overnight dispatch run``).

:func:`~overnight_dispatch.dispatcher.run_dispatcher` is the entry point; see
``services/dispatcher/README.md`` for how it keeps dispatches once-only across restarts.
"""
