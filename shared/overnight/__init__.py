"""overnight: automated microscopy image analysis that runs while the lab sleeps.

The library holds all domain logic as small typed functions; the services under
``services/`` wire storage, queues and HTTP around it.
"""

__version__ = "0.1.0"
