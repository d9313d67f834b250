"""Pharmacokinetic analysis: drug profiles measured from images and their NCA.

:mod:`overnight.analysis.nca` computes noncompartmental parameters of concentration–time
profiles; :mod:`overnight.analysis.profiles` turns drug-channel stacks and compartment labels
into those profiles.
"""

from overnight.analysis.nca import NCA_COLUMNS, NcaResult, auc_trapezoid, nca, nca_table

__all__ = ["NCA_COLUMNS", "NcaResult", "auc_trapezoid", "nca", "nca_table"]
