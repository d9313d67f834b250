"""Learned models: U-Nets for cells and particles, their training, loading and tiled inference.

Modules: :mod:`.config` (frozen configs saved as ``config.json``), :mod:`.unet` (builders),
:mod:`.tiling`, :mod:`.cells` and :mod:`.celltypes` (cell model), :mod:`.pnp` (particle model),
:mod:`.datasets`, :mod:`.training`, :mod:`.cells_training`, :mod:`.pnp_training`,
:mod:`.loading` (shipped defaults, folders, URIs) and :mod:`.card` (model cards).
TensorFlow is imported only by the modules that build or run networks.
"""
