"""Results of analysed images: the output files, summaries, and loading them into pandas.

>>> import overnight.results
>>> res = overnight.results.load("overnight-results")      # doctest: +SKIP
>>> res.cells.groupby(["sample", "cell_type"]).pnp_count.mean()  # doctest: +SKIP
"""

from overnight.results.loader import Results, load, load_from_store

__all__ = ["Results", "load", "load_from_store"]
