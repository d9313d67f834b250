"""The segmentation worker: ``overnight worker segmentation``.

Takes jobs from the ``overnight-segmentation`` queue: reads the image, segments and classifies
the cells, leaves them in storage for the counting stage and enqueues the pnp-counter job.
All the work is in :mod:`overnight.jobs`; this package only names the worker kind
(:mod:`.worker`).
"""
