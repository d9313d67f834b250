"""How many particles a density basin holds: a calibrated classifier on a few basin features.

Brightness encodes multiplicity, but a basin's density integral alone under-counts pairs and
over-counts bright singles: amplitudes scatter by ~25 % and the network shrinks faint blobs.
A softmax regression on basin features (density integral and peak, input brightness, size
and spread) gives the probability of 0, 1, …, ``MAX_PARTICLES`` particles per basin. It is
fitted without class balancing, so the probabilities keep the data's frequencies and their
expectation is an unbiased count: summed over a cell's basins, it is the cell's count
(:func:`overnight.steps.counting.assign_particles`), which errs far less than summing rounded
per-basin guesses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from overnight.models.celltypes import TypeClassifier, fit_classifier

MULTIPLICITY_FILE = "multiplicity.json"
#: The last class holds this many particles or more.
MAX_PARTICLES = 7
#: Basin features, in column order.
FEATURES = (
    "integral",
    "peak",
    "log_core_voxels",
    "input_sum",
    "input_max",
    "spread_major_px",
    "spread_minor_px",
    "spread_z_slices",
    "integral_squared",
)
#: A basin's core: voxels whose density passes this fraction of one particle's peak.
_CORE_FRACTION = 0.25


def basin_features(
    density: np.ndarray,
    normalised: np.ndarray,
    basins: np.ndarray | None,
    density_scale: float,
    blob_peak: float,
    voxels: tuple[tuple[np.ndarray, ...], np.ndarray] | None = None,
) -> np.ndarray:
    """Feature rows ``(N, len(FEATURES))`` of basins ``1..N`` of ``basins`` (all ``ZYX``).

    ``density`` is the network output, ``normalised`` its input (units of one particle's
    peak); the integral is in particles, the peak in single-particle peaks, spreads in px.
    ``voxels`` (``np.nonzero(basins)`` and the labels there, raster order) stands for
    ``basins`` when the caller has them already.
    """
    if voxels is None:
        if basins is None:
            raise ValueError("basin_features needs basins or their voxels")
        where = np.nonzero(basins)
        label = basins[where]
    else:
        where, label = voxels
    n = int(label.max()) if len(label) else 0
    if n == 0:
        return np.zeros((0, len(FEATURES)))
    weight = density[where].astype(np.float64)
    mass = np.maximum(np.bincount(label, weight, n + 1)[1:], 1e-9)

    def moment(values: np.ndarray) -> np.ndarray:
        return np.bincount(label, weight * values, n + 1)[1:] / mass

    z, y, x = (axis.astype(np.float64) for axis in where)
    mz, my, mx = moment(z), moment(y), moment(x)
    vz, vy, vx = moment(z * z) - mz**2, moment(y * y) - my**2, moment(x * x) - mx**2
    cxy = moment(y * x) - my * mx
    half_trace = (vy + vx) / 2
    root = np.sqrt(np.maximum(half_trace**2 - (vy * vx - cxy**2), 0.0))
    in_core = weight > _CORE_FRACTION * blob_peak
    input_values = normalised[where]
    brightness = np.clip(input_values, 0.0, None).astype(np.float64)
    integral = mass / density_scale
    return np.column_stack(
        [
            integral,
            _label_maximum(label, weight, n) / blob_peak,
            np.log1p(np.bincount(label[in_core], minlength=n + 1)[1:]),
            np.bincount(label[in_core], brightness[in_core], n + 1)[1:],
            _label_maximum(label, input_values.astype(np.float64), n),
            np.sqrt(np.maximum(half_trace + root, 0.0)),
            np.sqrt(np.maximum(half_trace - root, 0.0)),
            np.sqrt(np.maximum(vz, 0.0)),
            integral**2,
        ]
    )


def _label_maximum(label: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Largest of ``values`` per label ``1..n`` (``ndi.maximum`` without sorting the volume)."""
    largest = np.full(n + 1, -np.inf)
    np.maximum.at(largest, label, values)
    return largest[1:]


def particles_per_basin(basins: np.ndarray, points_zyx: np.ndarray) -> np.ndarray:
    """True particles in each basin ``1..N`` (``(N,)``), from particle positions (slices, px)."""
    n = int(basins.max())
    if not len(points_zyx):
        return np.zeros(n, dtype=np.int64)
    index = tuple(
        np.clip(np.rint(points_zyx[:, axis]).astype(np.int64), 0, size - 1)
        for axis, size in enumerate(basins.shape)
    )
    return np.bincount(basins[index], minlength=n + 1)[1:]


@dataclass(frozen=True)
class MultiplicityModel:
    """Probabilities of 0…``MAX_PARTICLES`` particles per basin, and their expectation."""

    classifier: TypeClassifier

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """``(N, MAX_PARTICLES + 1)`` class probabilities of feature rows."""
        return self.classifier.probabilities(np.asarray(features, np.float64))

    def expected(self, features: np.ndarray) -> np.ndarray:
        """Expected particles per basin, ``(N,)``."""
        if not len(features):
            return np.zeros(0)
        probabilities = self.probabilities(features)
        return probabilities @ np.arange(probabilities.shape[1], dtype=np.float64)

    def save(self, model_dir: Path) -> Path:
        """Write ``multiplicity.json`` in ``model_dir``."""
        return self.classifier.save(model_dir, MULTIPLICITY_FILE)

    @classmethod
    def load(cls, model_dir: Path) -> MultiplicityModel | None:
        """The multiplicity model saved in ``model_dir``, or None (older models have none)."""
        classifier = TypeClassifier.load(model_dir, MULTIPLICITY_FILE)
        return cls(classifier) if classifier is not None else None


def fit_multiplicity(features: np.ndarray, particles: np.ndarray) -> MultiplicityModel:
    """Fit the classifier to basin feature rows and their true particle numbers (unbalanced)."""
    classes = np.minimum(np.asarray(particles, np.int64), MAX_PARTICLES)
    names = tuple(str(k) for k in range(MAX_PARTICLES + 1))
    classifier = fit_classifier(features, classes, names, l2=1e-3, iterations=3000, balanced=False)
    return MultiplicityModel(classifier)
