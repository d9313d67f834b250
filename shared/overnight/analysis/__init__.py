"""Pharmacokinetic analysis: drug profiles measured from images and their NCA.

:mod:`overnight.analysis.nca` computes noncompartmental parameters of concentration–time
profiles; :mod:`overnight.analysis.profiles` turns drug-channel stacks and compartment labels
into those profiles (``profiles.csv``) and their NCA tables (``nca.csv``).
"""

from overnight.analysis.nca import NCA_COLUMNS, NcaResult, auc_trapezoid, nca, nca_table
from overnight.analysis.profiles import (
    PROFILE_COLUMNS,
    drug_profiles,
    estimate_background,
    nca_for_profiles,
    pk_profiles,
    series_drug_profiles,
)

__all__ = [
    "NCA_COLUMNS",
    "PROFILE_COLUMNS",
    "NcaResult",
    "auc_trapezoid",
    "drug_profiles",
    "estimate_background",
    "nca",
    "nca_for_profiles",
    "nca_table",
    "pk_profiles",
    "series_drug_profiles",
]
