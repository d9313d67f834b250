"""Accuracy of pipeline results against ground truth.

Digital cytometry: :func:`score_field`, :func:`score_dataset` and :func:`count_error_table`
implement the metrics of IMAGING_MODEL.md §1.
"""

from overnight.evaluation.cytometry import (
    DatasetScore,
    FieldScore,
    FieldTruth,
    count_error_table,
    read_field_tables,
    score_dataset,
    score_field,
)

__all__ = [
    "DatasetScore",
    "FieldScore",
    "FieldTruth",
    "count_error_table",
    "read_field_tables",
    "score_dataset",
    "score_field",
]
