"""QC figures of the skin-PK pipeline, as PNG bytes (matplotlib, no display needed).

- :func:`overlay_png`: every plane of one timepoint, structure in grey with the compartments
  tinted and outlined;
- :func:`concentration_time_png`: drug signal against time per compartment (pooled over depth),
  Tmax and Cmax marked;
- :func:`depth_profiles_png`: the same per compartment and depth;
- :func:`depth_time_heatmap_png`: depth × time heatmaps of the drug signal, all tissue and per
  compartment: the drug's downward wave;
- :func:`nca_table_png`: the NCA table with units.

Every figure is built on its own :class:`~matplotlib.figure.Figure` (no pyplot state), so
they can be drawn from worker threads.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import Bbox
from scipy import ndimage

from overnight.analysis.profiles import pk_profiles

#: Colour of each known compartment (others get tab10 colours in label order).
COMPARTMENT_COLOURS: dict[str, str] = {
    "stratum_corneum": "#e69f00",
    "viable_epidermis": "#009e73",
    "hair_follicle": "#d62728",
    "dermis": "#0072b2",
    "adipose": "#cc79a7",
}
#: Longest side (px) of one plane in an overlay; larger planes are subsampled for display.
OVERLAY_PANEL_PX = 384


def compartment_colour(name: str, index: int) -> str:
    """The display colour of compartment ``name`` (label ``index + 1``)."""
    return COMPARTMENT_COLOURS.get(name, f"C{index % 10}")


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _signal_label(unit: str | None) -> str:
    return f"drug concentration ({unit})" if unit else "drug signal (ADU above background)"


def overlay_png(
    structure: np.ndarray,
    labels: np.ndarray,
    depths_um: Sequence[float],
    compartments: Sequence[str],
    title: str,
    pixel_size_um: float | None = None,
) -> bytes:
    """Planes of one timepoint with their compartments: grey structure, tinted classes, outlines.

    Parameters
    ----------
    structure : ndarray of shape (Z, Y, X)
        Structure (CH₂) channel.
    labels : ndarray of shape (Z, Y, X)
        Compartments (0 = none).
    depths_um : sequence of float
        Depth of each plane (µm), shown in the panel titles.
    compartments : sequence of str
        Names of labels 1..K.
    title : str
        Figure title (image id, time).
    pixel_size_um : float, optional
        Pixel size (µm): draws a 50 µm scale bar in the first panel.
    """
    n_z = structure.shape[0]
    step = max(1, int(np.ceil(max(structure.shape[1:]) / OVERLAY_PANEL_PX)))
    n_cols = min(n_z, 4)
    n_rows = int(np.ceil(n_z / n_cols))
    height = 3.1 * n_rows + 0.9
    fig = Figure(figsize=(2.8 * n_cols, height))
    lut = np.array(
        [(0.0, 0.0, 0.0)] + [to_rgb(compartment_colour(n, i)) for i, n in enumerate(compartments)]
    )
    low, high = np.percentile(structure[:, ::step, ::step], (1, 99.5))
    for z in range(n_z):
        ax = fig.add_subplot(n_rows, n_cols, z + 1)
        grey = np.clip((structure[z, ::step, ::step] - low) / max(high - low, 1e-6), 0, 1)
        lab = labels[z, ::step, ::step].astype(np.intp)
        rgb = np.repeat(grey[..., None], 3, axis=2)
        tinted = np.where(lab[..., None] > 0, 0.6 * rgb + 0.4 * lut[lab], rgb)
        edges = ndimage.morphological_gradient(lab, size=3) > 0
        tinted[edges] = lut[lab][edges]
        ax.imshow(tinted, interpolation="nearest")
        ax.set_title(f"depth {depths_um[z]:.1f} µm", fontsize=9)
        if z == 0 and pixel_size_um:
            bar_px = 50.0 / (pixel_size_um * step)
            y, x0 = grey.shape[0] * 0.93, grey.shape[1] * 0.05
            ax.plot([x0, x0 + bar_px], [y, y], color="white", lw=3)
            ax.text(x0, y - grey.shape[0] * 0.03, "50 µm", color="white", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [
        Patch(color=compartment_colour(n, i), label=n.replace("_", " "))
        for i, n in enumerate(compartments)
    ]
    fig.legend(
        handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=9, frameon=False
    )
    fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(
        left=0.01, right=0.99, bottom=0.5 / height, top=1 - 0.45 / height, wspace=0.04, hspace=0.14
    )
    return _png(fig)


def concentration_time_png(
    profiles: pd.DataFrame, nca: pd.DataFrame, unit: str | None = None
) -> bytes:
    """Drug signal against time per compartment (pixel-weighted over depth), Cmax marked.

    Parameters
    ----------
    profiles : pandas.DataFrame
        ``time, depth, compartment, signal, n_px``.
    nca : pandas.DataFrame
        The per-compartment NCA table (``compartment, cmax, tmax, ...``).
    unit : str, optional
        Concentration unit when calibrated; else the signal is in ADU.
    """
    pooled = pk_profiles(profiles)
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.add_subplot()
    names = list(dict.fromkeys(profiles["compartment"]))
    for i, name in enumerate(names):
        curve = pooled[(pooled["compartment"] == name) & pooled["signal"].notna()]
        colour = compartment_colour(name, i)
        ax.plot(
            curve["time"], curve["signal"], "o-", color=colour, label=name.replace("_", " "), ms=4
        )
        row = nca[nca["compartment"] == name]
        if len(row) and np.isfinite(row["tmax"].iloc[0]):
            ax.plot(row["tmax"].iloc[0], row["cmax"].iloc[0], "v", color=colour, ms=9, mec="black")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("time after dosing (min)")
    ax.set_ylabel(_signal_label(unit))
    ax.set_title("Drug concentration–time profile per compartment (▼ = Cmax at Tmax)")
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return _png(fig)


def depth_profiles_png(profiles: pd.DataFrame, unit: str | None = None) -> bytes:
    """One panel per compartment: drug signal against time, one line per depth."""
    names = list(dict.fromkeys(profiles["compartment"]))
    depths = np.sort(profiles["depth"].unique())
    colours = colormaps["viridis"](np.linspace(0, 0.9, max(len(depths), 1)))
    n_cols = min(len(names), 3)
    n_rows = int(np.ceil(len(names) / max(n_cols, 1)))
    fig = Figure(figsize=(4.2 * n_cols, 3.2 * n_rows + 0.4))
    for i, name in enumerate(names):
        ax = fig.add_subplot(n_rows, n_cols, i + 1)
        part = profiles[(profiles["compartment"] == name) & (profiles["n_px"] > 0)]
        for depth, colour in zip(depths, colours, strict=True):
            curve = part[part["depth"] == depth]
            if len(curve):
                ax.plot(
                    curve["time"],
                    curve["signal"],
                    "o-",
                    color=colour,
                    ms=3,
                    lw=1,
                    label=f"{depth:g} µm",
                )
        ax.set_title(name.replace("_", " "), fontsize=10)
        ax.set_xlabel("time after dosing (min)", fontsize=8)
        ax.set_ylabel(_signal_label(unit), fontsize=8)
        ax.grid(alpha=0.3)
    handles = [
        Line2D([], [], color=c, marker="o", ms=3, label=f"{d:g} µm")
        for d, c in zip(depths, colours, strict=True)
    ]
    fig.suptitle("Drug signal per compartment and depth (deeper planes peak later)")
    fig.tight_layout(rect=(0, 0, 0.88, 1))
    fig.legend(
        handles=handles,
        title="depth",
        loc="center right",
        fontsize=7,
        title_fontsize=8,
        frameon=False,
    )
    return _png(fig)


def _edges(values: np.ndarray) -> np.ndarray:
    """Cell edges around sorted ``values`` (midpoints; the ends extended by half a step)."""
    if len(values) == 1:
        return np.array([values[0] - 0.5, values[0] + 0.5])
    mid = (values[1:] + values[:-1]) / 2
    return np.concatenate([[2 * values[0] - mid[0]], mid, [2 * values[-1] - mid[-1]]])


def depth_time_heatmap_png(profiles: pd.DataFrame, unit: str | None = None) -> bytes:
    """Depth × time heatmaps of the drug signal: all tissue (pixel-weighted) and per compartment.

    Time runs along x at the sampled (irregular) times, depth down the y axis with the surface
    at the top; grey cells are planes where a compartment is absent.
    """
    names = ["all tissue", *dict.fromkeys(profiles["compartment"])]
    pooled_all = pk_profiles(profiles.assign(compartment="all tissue"), by=("compartment", "depth"))
    per = pk_profiles(profiles, by=("compartment", "depth"))
    table = pd.concat([pooled_all, per], ignore_index=True)
    times = np.sort(profiles["time"].unique()).astype(float)
    depths = np.sort(profiles["depth"].unique()).astype(float)
    n_cols = min(len(names), 3)
    n_rows = int(np.ceil(len(names) / n_cols))
    fig = Figure(figsize=(4.4 * n_cols, 3.4 * n_rows + 0.4))
    vmax = np.nanpercentile(table["signal"].to_numpy(dtype=float), 99) if len(table) else 1.0
    cmap = colormaps["magma"].with_extremes(bad="#bbbbbb")
    for i, name in enumerate(names):
        part = table[table["compartment"] == name]
        grid = part.pivot_table(
            index="depth", columns="time", values="signal", aggfunc="first", dropna=False
        )
        grid = grid.reindex(index=depths, columns=times)
        ax = fig.add_subplot(n_rows, n_cols, i + 1)
        mesh = ax.pcolormesh(
            _edges(times),
            _edges(depths),
            np.ma.masked_invalid(grid.to_numpy(dtype=float)),
            cmap=cmap,
            vmin=0,
            vmax=max(float(vmax), 1e-9),
            shading="flat",
        )
        ax.invert_yaxis()
        ax.set_title(name.replace("_", " "), fontsize=10)
        ax.set_xlabel("time after dosing (min)", fontsize=8)
        ax.set_ylabel("depth below surface (µm)", fontsize=8)
        fig.colorbar(mesh, ax=ax, label=_signal_label(unit)).ax.tick_params(labelsize=7)
    fig.suptitle("Drug signal by depth and time: the downward wave")
    fig.tight_layout()
    return _png(fig)


_NCA_DISPLAY: tuple[tuple[str, str], ...] = (
    ("cmax", "Cmax\n[{c}]"),
    ("tmax", "Tmax\n[min]"),
    ("clast", "Clast\n[{c}]"),
    ("tlast", "Tlast\n[min]"),
    ("auc_last", "AUClast\n[{c}·min]"),
    ("auc_inf_obs", "AUCinf,obs\n[{c}·min]"),
    ("lambda_z", "λz\n[1/min]"),
    ("half_life", "t½\n[min]"),
    ("r2_adj", "adj. R²"),
    ("n_points_lambda_z", "n λz"),
)


def _fmt(value: object) -> str:
    if not isinstance(value, int | float) or not np.isfinite(value):
        return "–"
    if abs(value) >= 1e6 or (0 < abs(value) < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4g}" if abs(value) >= 100 else f"{value:.3g}"


def nca_table_png(
    nca: pd.DataFrame,
    unit: str | None = None,
    title: str = "NCA per compartment",
    auc_method: str = "linlog",
) -> bytes:
    """The NCA table as a figure: one row per compartment, units in the headers, reasons below."""
    c = unit or "ADU"
    headers = ["compartment", *(label.format(c=c) for _, label in _NCA_DISPLAY)]
    cells = [
        [str(row["compartment"]).replace("_", " "), *(_fmt(row[col]) for col, _ in _NCA_DISPLAY)]
        for _, row in nca.iterrows()
    ]
    reasons = [
        f"{row['compartment']}: {row['reason']}"
        for _, row in nca.iterrows()
        if isinstance(row["reason"], str) and row["reason"]
    ]
    n_rows = max(len(cells), 1) + 1
    height = 0.32 * (n_rows + 1)
    fig = Figure(figsize=(13, height))
    ax = fig.add_axes((0, 0, 1, 1 - 0.3 / height))
    ax.axis("off")
    table = ax.table(
        cellText=cells or [["–"] * len(headers)],
        colLabels=headers,
        bbox=Bbox.from_bounds(0, 0, 1, 1),
        cellLoc="center",
        colWidths=[2.0] + [1.0] * (len(headers) - 1),
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    for (r, _), cell in table.get_celld().items():
        if r == 0:
            cell.set_facecolor("#e8e8e8")
    method = "linear-up/log-down" if auc_method == "linlog" else "linear"
    fig.suptitle(f"{title} ({method} trapezoids; λz by adjusted R²)", fontsize=11, y=1.0)
    for k, reason in enumerate(reasons):  # below the table; savefig's tight box takes them in
        fig.text(0.0, -(0.25 + 0.22 * k) / height, f"– {reason}", fontsize=8)
    return _png(fig)
