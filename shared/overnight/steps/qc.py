"""The QC picture a person looks at: outlines coloured by type, particles, counts."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from skimage import segmentation  # noqa: E402

from overnight.steps.cells import normalise_intensity  # noqa: E402

#: Colour per cell type, in the order the type list is configured (colour-blind safe).
TYPE_COLOURS = ("#56B4E9", "#E69F00", "#009E73", "#CC79A7", "#F0E442", "#D55E00")


def render_qc_png(
    cell_image: np.ndarray,
    labels: np.ndarray,
    cells: pd.DataFrame,
    pnps: pd.DataFrame,
    type_names: tuple[str, ...],
    title: str = "",
    max_side_px: int = 1024,
) -> bytes:
    """PNG of the cell image (``YX``) with outlines by type, particles and per-cell counts.

    Particles on a cell are red dots, particles on glass hollow yellow circles; each cell's
    count is written at its centre; the legend counts particles (a row's ``multiplicity``).
    Large fields are shown downsampled to ``max_side_px``.
    """
    ny, nx = cell_image.shape
    scale = max(1, int(np.ceil(max(ny, nx) / max_side_px)))
    grey = np.clip(normalise_intensity(cell_image[::scale, ::scale]), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    small_labels = labels[::scale, ::scale]
    colour_of = {name: TYPE_COLOURS[i % len(TYPE_COLOURS)] for i, name in enumerate(type_names)}
    for name, colour in colour_of.items():
        ids = cells.loc[cells["cell_type"] == name, "cell_id"].to_numpy()
        boundary = segmentation.find_boundaries(
            np.where(np.isin(small_labels, ids), small_labels, 0), mode="inner"
        )
        rgb[boundary] = matplotlib.colors.to_rgb(colour)

    inches = max(grey.shape) / 100
    fig, ax = plt.subplots(
        figsize=(
            inches * grey.shape[1] / max(grey.shape) + 0.1,
            inches * grey.shape[0] / max(grey.shape) + 0.5,
        ),
        dpi=100,
    )
    ax.imshow(rgb, interpolation="nearest")
    on_cell = pnps["cell_id"] > 0
    particles = pnps["multiplicity"] if "multiplicity" in pnps else pd.Series(1, index=pnps.index)
    ax.scatter(
        pnps.loc[on_cell, "x"] / scale,
        pnps.loc[on_cell, "y"] / scale,
        s=4,
        c="#ff3030",
        linewidths=0,
    )
    ax.scatter(
        pnps.loc[~on_cell, "x"] / scale,
        pnps.loc[~on_cell, "y"] / scale,
        s=18,
        facecolors="none",
        edgecolors="#ffff00",
        linewidths=0.8,
    )
    for row in cells.itertuples():
        ax.text(
            row.x / scale,
            row.y / scale,
            str(row.pnp_count),
            color="white",
            fontsize=7,
            ha="center",
            va="center",
            weight="bold",
            bbox={"boxstyle": "round,pad=0.15", "fc": "black", "alpha": 0.55, "lw": 0},
        )
    handles = [
        plt.Line2D([], [], color=c, lw=2, label=f"{n} ({int((cells['cell_type'] == n).sum())})")
        for n, c in colour_of.items()
    ]
    handles.append(
        plt.Line2D(
            [],
            [],
            color="#ff3030",
            marker="o",
            lw=0,
            ms=3,
            label=f"PNP on cell ({int(particles[on_cell].sum())})",
        )
    )
    handles.append(
        plt.Line2D(
            [],
            [],
            color="#ffff00",
            marker="o",
            mfc="none",
            lw=0,
            ms=5,
            label=f"PNP on glass ({int(particles[~on_cell].sum())})",
        )
    )
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=len(handles),
        fontsize=7,
        frameon=False,
    )
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()
    fig.subplots_adjust(left=0, right=1, top=0.96 if title else 1, bottom=0.06)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
