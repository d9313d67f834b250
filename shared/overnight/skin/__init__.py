"""The skin-pharmacokinetics pipeline (IMAGING_MODEL.md §2): series, compartments, PK, plots.

:mod:`~overnight.skin.series` finds and orders the timepoint stacks of one skin sample;
:mod:`~overnight.skin.pipeline` segments compartments per plane and measures drug profiles
and their NCA; :mod:`~overnight.skin.plots` draws the QC figures;
:mod:`~overnight.skin.training` trains the compartment model of :mod:`overnight.models.skin`.
"""
