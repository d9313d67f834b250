"""Statistics plots as SVG (matplotlib, Agg backend), labelled with quantities and units."""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from overnight.review.overlay import TYPE_COLOURS  # noqa: E402
from overnight.review.stats import CountHistogram, GroupStats  # noqa: E402

_STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "svg.fonttype": "none",  # text stays text: crisp and searchable
}


#: pyplot and its style context are global state: one plot is drawn at a time (the QC service
#: serves requests from several threads).
_PLOT_LOCK = threading.Lock()


def _svg(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def histogram_svg(hist: CountHistogram, colour: str = TYPE_COLOURS[0]) -> bytes:
    """Bars of cells per PNP count with the Poisson expectation of the same mean as a line."""
    with _PLOT_LOCK, plt.style.context(_STYLE):
        fig, ax = plt.subplots(figsize=(5.2, 3.0))
        ks = np.arange(len(hist.counts))
        ax.bar(ks, hist.counts, width=0.9, color=colour, alpha=0.85, label="observed")
        if hist.n_cells and hist.mean > 0:
            ax.plot(
                ks,
                hist.poisson,
                color="#222222",
                lw=1.4,
                marker="o",
                ms=2.5,
                label=f"Poisson, mean {hist.mean:.2f}",
            )
        vmr = "n/a" if math.isnan(hist.vmr) else f"{hist.vmr:.2f}"
        ax.set_title(f"{hist.cell_type}: {hist.n_cells} cells, VMR {vmr}")
        ax.set_xlabel("PNPs per cell (count)")
        ax.set_ylabel("cells (count)")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(frameon=False, fontsize=8)
        ax.margins(x=0.01)
        return _svg(fig)


def groups_svg(groups: Sequence[GroupStats], type_names: Sequence[str], field: str) -> bytes:
    """Box plot with every image as a dot: mean PNPs per cell per image, by group and type."""
    with _PLOT_LOCK, plt.style.context(_STYLE):
        width = max(5.2, 0.9 * len(groups) * max(1, len(type_names)) + 1.5)
        fig, ax = plt.subplots(figsize=(min(width, 14.0), 3.4))
        n_types = max(1, len(type_names))
        offsets = np.linspace(-0.3, 0.3, n_types) if n_types > 1 else np.zeros(1)
        rng = np.random.default_rng(0)  # fixed jitter: the same data draws the same plot
        for t_index, type_name in enumerate(type_names):
            colour = TYPE_COLOURS[t_index % len(TYPE_COLOURS)]
            positions, data = [], []
            for g_index, group in enumerate(groups):
                values = group.pnp_means.get(type_name, ())
                if values:
                    positions.append(g_index + offsets[t_index])
                    data.append(values)
            if not data:
                continue
            box_width = 0.5 / n_types
            ax.boxplot(
                data,
                positions=positions,
                widths=box_width,
                showfliers=False,
                medianprops={"color": colour, "lw": 1.5},
                manage_ticks=False,
            )
            for x, values in zip(positions, data, strict=True):
                jitter = rng.uniform(-box_width / 3, box_width / 3, len(values))
                ax.scatter(
                    x + jitter,
                    values,
                    s=20,
                    color=colour,
                    alpha=0.7,
                    lw=0,
                    label=type_name if x == positions[0] else None,
                )
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([f"{g.group}\n({g.n_images} img)" for g in groups], fontsize=8)
        ax.set_xlabel(field)
        ax.set_ylabel("mean PNPs per cell per image (count)")
        ax.set_title(f"PNPs per cell by {field}")
        if type_names:
            ax.legend(frameon=False, fontsize=8)
        return _svg(fig)
