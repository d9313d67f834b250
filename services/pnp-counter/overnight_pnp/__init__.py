"""The pnp-counter worker: ``overnight worker pnp``.

Takes jobs from the ``overnight-pnp`` queue: re-reads the image, takes the segmentation left by
the segmentation worker, detects and counts PNPs per cell, and publishes the tables, the QC
image and the manifest. All the work is in :mod:`overnight.jobs`; this package only names the
worker kind.
"""
