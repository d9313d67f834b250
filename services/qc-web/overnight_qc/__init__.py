"""The QC web service: look at every analysed image, accept or reject it, see the statistics.

Build the app with :func:`overnight_qc.app.create_app`; run it with ``overnight qc-web``.
"""
