"""Downloads of a dataset: the image table (``summary.csv``) and the per-cell table.

Both carry each image's metadata and verdict, and both normally leave rejected images out
(the caller picks the rows).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from overnight.review.index import ImageRow
from overnight.storage.base import ObjectStore

#: Columns every summary row starts with, before metadata and counts.
_FRONT = ("image_id",)
_VERDICT_COLUMNS = ("verdict", "verdict_comment", "verdict_by", "verdict_at")


def _verdict_values(row: ImageRow) -> list[str]:
    v = row.verdict
    if v is None:
        return ["unreviewed", "", "", ""]
    return [v.verdict.value, v.comment, v.who, v.when.isoformat()]


def _number(value: float) -> str:
    if value != value:  # NaN
        return ""
    return str(int(value)) if float(value).is_integer() else repr(round(value, 6))


def summary_csv(rows: Sequence[ImageRow], metadata_columns: Sequence[str]) -> bytes:
    """One line per image: id, metadata, every summary value, then the verdict columns."""
    summary_keys = list(dict.fromkeys(key for row in rows for key in row.summary))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*_FRONT, *metadata_columns, *summary_keys, *_VERDICT_COLUMNS])
    for row in rows:
        writer.writerow(
            [
                row.image_id,
                *(row.metadata.get(c, "") for c in metadata_columns),
                *(_number(row.summary[k]) if k in row.summary else "" for k in summary_keys),
                *_verdict_values(row),
            ]
        )
    return buffer.getvalue().encode("utf-8")


def read_cells(store: ObjectStore, row: ImageRow) -> pd.DataFrame:
    """The image's ``cells.csv``."""
    return pd.read_csv(io.BytesIO(store.read_bytes(f"{row.prefix}/cells.csv")))


def cell_table_chunks(
    store: ObjectStore, rows: Iterable[ImageRow], metadata_columns: Sequence[str]
) -> Iterator[bytes]:
    """The per-cell CSV, one chunk per image: ``image_id``, metadata, verdict, then cells.csv."""
    header_written = False
    cell_columns: list[str] = []
    for row in rows:
        cells = read_cells(store, row)
        if not header_written:
            cell_columns = list(cells.columns)
            front = [*_FRONT, *metadata_columns, "verdict"]
            yield (",".join(_csv_field(c) for c in [*front, *cell_columns]) + "\n").encode("utf-8")
            header_written = True
        front = [
            row.image_id,
            *(row.metadata.get(c, "") for c in metadata_columns),
            row.verdict_name,
        ]
        table = cells.reindex(columns=cell_columns).reset_index(drop=True)
        # Positional names: a metadata key may equal a cell column (the header is written once).
        front_table = pd.DataFrame({f"__{i}": [v] * len(table) for i, v in enumerate(front)})
        out = pd.concat([front_table, table], axis=1)
        yield out.to_csv(index=False, header=False).encode("utf-8")
    if not header_written:
        yield b"image_id\n"


def _csv_field(text: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([text])
    return buffer.getvalue()


def cell_counts(store: ObjectStore, row: ImageRow) -> tuple[np.ndarray, np.ndarray]:
    """(cell type per cell, PNP count per cell) of one image, as arrays.

    Parsed with the ``csv`` module, not pandas: for a table of tens of rows that is ~10x
    faster, which matters when statistics read 10,000 of them.
    """
    text = store.read_bytes(f"{row.prefix}/cells.csv").decode("utf-8")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    try:
        type_at, count_at = header.index("cell_type"), header.index("pnp_count")
    except ValueError:
        return np.array([], dtype=str), np.array([], dtype=np.int64)
    types, counts = [], []
    for record in reader:
        if len(record) > max(type_at, count_at):
            types.append(record[type_at])
            counts.append(int(float(record[count_at])))
    return np.array(types, dtype=str), np.array(counts, dtype=np.int64)
