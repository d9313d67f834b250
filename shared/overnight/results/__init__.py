"""Results of analysed images: the layout, the typed ``result.json``, summaries, loading.

>>> import overnight.results
>>> res = overnight.results.load("overnight-results")      # doctest: +SKIP
>>> res.cells.groupby(["sample", "cell_type"]).pnp_count.mean()  # doctest: +SKIP
"""

from overnight.results.layout import DatasetResults, dataset_prefix
from overnight.results.loader import Results, load, load_from_store
from overnight.results.record import ImageResult

__all__ = ["DatasetResults", "ImageResult", "Results", "dataset_prefix", "load", "load_from_store"]
