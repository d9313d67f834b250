"""A learned cell-type classifier: softmax regression on per-cell features.

Features per cell: size and shape (log area in µm², log diameter of the circle fitted to the
cell's outline in µm, elongation, solidity, eccentricity) and, optionally, the cell model's last
decoder feature map averaged inside the cell. Shape alone holds on images that look unlike the
training set (network features follow the look); the fitted circle keeps the size of a cell
cut by the field's edge, whose area does not. The classifier is fitted
by the training command (L2-regularised multinomial logistic regression, full-batch gradient
descent) and saved as ``classifier.json`` beside the network weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage import measure

CLASSIFIER_FILE = "classifier.json"
SHAPE_FEATURES = ("log_area_um2", "log_fit_diameter_um", "elongation", "solidity", "eccentricity")
#: Fewest outline pixels off the field's edge for a circle fit; fewer use the area's diameter.
_MIN_FIT_PX = 12


def fitted_diameter_px(
    mask: np.ndarray, offset_yx: tuple[int, int], shape_yx: tuple[int, ...]
) -> float:
    """Diameter (px) of the least-squares circle through a cell's outline (Kåsa fit).

    ``mask`` is the cell's bounding-box crop at ``offset_yx`` in a field of ``shape_yx``.
    Outline pixels on the field's edge are left out, so a cell cut by the edge keeps its size.
    The result is clipped to 0.8–3× the diameter of a disk of the same area.
    """
    area_diameter = 2.0 * np.sqrt(mask.sum() / np.pi)
    edge = mask & ~ndi.binary_erosion(mask)
    ys, xs = np.nonzero(edge)
    ys, xs = ys + offset_yx[0], xs + offset_yx[1]
    inside = (ys > 0) & (xs > 0) & (ys < shape_yx[0] - 1) & (xs < shape_yx[1] - 1)
    ys, xs = ys[inside].astype(float), xs[inside].astype(float)
    if len(ys) < _MIN_FIT_PX:
        return float(area_diameter)
    design = np.column_stack([2 * xs, 2 * ys, np.ones_like(xs)])
    (cx, cy, c), *_ = np.linalg.lstsq(design, xs**2 + ys**2, rcond=None)
    radius_sq = c + cx**2 + cy**2
    diameter = 2.0 * np.sqrt(max(radius_sq, 0.0))
    return float(np.clip(diameter, 0.8 * area_diameter, 3.0 * area_diameter))


def cell_features(
    labels: np.ndarray, feature_map: np.ndarray | None, pixel_size_um: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell feature rows for the cells of ``labels``.

    Parameters
    ----------
    labels : ndarray of shape (Y, X)
        Instance labels, 0 = background.
    feature_map : ndarray of shape (Y, X, F), or None
        The network's per-pixel features; None for shape features only.
    pixel_size_um : float
        Pixel size (µm), so that size features do not depend on the camera.

    Returns
    -------
    cell_ids : ndarray of shape (N,)
    features : ndarray of shape (N, 5 + F)
    """
    props = measure.regionprops(labels)
    ids = np.array([p.label for p in props], dtype=np.int64)
    n_network = 0 if feature_map is None else feature_map.shape[-1]
    if not len(ids):
        return ids, np.zeros((0, len(SHAPE_FEATURES) + n_network), np.float32)
    shape = np.array(
        [
            [
                np.log(p.area * pixel_size_um**2),
                np.log(fitted_diameter_px(p.image, p.bbox[:2], labels.shape) * pixel_size_um),
                p.axis_major_length / max(p.axis_minor_length, 1.0),
                p.solidity,
                p.eccentricity,
            ]
            for p in props
        ]
    )
    if feature_map is None:
        return ids, shape.astype(np.float32)
    pooled = np.stack(
        [
            ndi.mean(feature_map[..., f], labels=labels, index=ids)
            for f in range(feature_map.shape[-1])
        ],
        axis=1,
    )
    return ids, np.concatenate([shape, pooled], axis=1).astype(np.float32)


@dataclass(frozen=True)
class TypeClassifier:
    """Softmax regression: ``p = softmax(((x - mean) / scale) @ weights + bias)``."""

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: np.ndarray

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities, ``(N, len(names))``."""
        z = ((features - self.mean) / self.scale) @ self.weights + self.bias
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, features: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
        """Type name and confidence (its probability) per row."""
        if not len(features):
            return (), np.zeros(0)
        p = self.probabilities(features)
        best = p.argmax(axis=1)
        return tuple(self.names[i] for i in best), p[np.arange(len(best)), best]

    def save(self, model_dir: Path, file_name: str = CLASSIFIER_FILE) -> Path:
        """Write ``classifier.json`` (or ``file_name``) in ``model_dir``."""
        path = model_dir / file_name
        doc = {
            k: (v.tolist() if isinstance(v, np.ndarray) else list(v)) for k, v in vars(self).items()
        }
        path.write_text(json.dumps(doc, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, model_dir: Path, file_name: str = CLASSIFIER_FILE) -> TypeClassifier | None:
        """The classifier saved in ``model_dir``, or None when the model has no types."""
        path = model_dir / file_name
        if not path.is_file():
            return None
        doc = json.loads(path.read_text())
        return cls(
            names=tuple(doc["names"]),
            mean=np.asarray(doc["mean"], np.float64),
            scale=np.asarray(doc["scale"], np.float64),
            weights=np.asarray(doc["weights"], np.float64),
            bias=np.asarray(doc["bias"], np.float64),
        )


def fit_classifier(
    features: np.ndarray,
    classes: np.ndarray,
    names: tuple[str, ...],
    l2: float = 1e-2,
    iterations: int = 2000,
    learning_rate: float = 0.5,
    balanced: bool = True,
) -> TypeClassifier:
    """Fit softmax regression to ``features`` ``(N, F)`` and class indices ``classes`` ``(N,)``.

    With ``balanced``, classes are weighted inversely to their frequency, so a rare type is not
    ignored; without it the probabilities keep the data's class frequencies (calibrated).
    """
    x = np.asarray(features, np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    xs = (x - mean) / scale
    n, k = len(xs), len(names)
    onehot = np.eye(k)[classes]
    freq = np.maximum(onehot.sum(axis=0), 1.0)
    sample_w = (n / (k * freq))[classes][:, None] if balanced else np.ones((n, 1))
    weights = np.zeros((xs.shape[1], k))
    bias = np.zeros(k)
    for _ in range(iterations):
        z = xs @ weights + bias
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        grad = sample_w * (p - onehot) / n
        weights -= learning_rate * (xs.T @ grad + l2 * weights)
        bias -= learning_rate * grad.sum(axis=0)
    return TypeClassifier(names, mean, scale, weights, bias)
