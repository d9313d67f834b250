"""The learned cell model: per-pixel background / interior / boundary → instance labels → types.

A 2D U-Net reads the focus-aware projection of the cell channel (normalised by percentiles)
and predicts three class probabilities. The distance transform of the interiors seeds a
watershed that grows them over the foreground, so touching cells, which the network separates
by a boundary band, become separate instances. A softmax-regression classifier on per-cell shape
and pooled network features gives each cell a type from the configured label set.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage import morphology, segmentation

from overnight.models.celltypes import TypeClassifier, cell_features
from overnight.models.config import CellModelConfig
from overnight.steps.cells import focus_projection, normalise_intensity, relabel_sequential

logger = logging.getLogger(__name__)

BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2


def cell_input(volume: np.ndarray, config: CellModelConfig) -> np.ndarray:
    """Network input from a ``ZYX`` cell channel: normalised focus projection, ``YX`` float32."""
    image = focus_projection(volume) if volume.ndim == 3 else np.asarray(volume, np.float32)
    return normalise_intensity(image, *config.normalise_percentiles)


def scaled_shape(shape_yx: tuple[int, int], scale: float) -> tuple[int, int]:
    """``shape_yx`` (px) times ``scale``, rounded, at least 1 px.

    >>> scaled_shape((384, 500), 0.625)
    (240, 312)
    """
    return (max(1, round(shape_yx[0] * scale)), max(1, round(shape_yx[1] * scale)))


def resize_yx(array: np.ndarray, shape_yx: tuple[int, int]) -> np.ndarray:
    """``array`` (``YX…``) resampled linearly to ``shape_yx`` (float32; smoothed when shrunk).

    Shrinking smooths first (σ = (1/s − 1)/2 px, scikit-image's anti-aliasing), so a
    resized image looks like one taken at the coarser pixel size.
    """
    from skimage.transform import resize

    array = np.asarray(array, np.float32)
    if array.size == 0:  # e.g. no feature channels
        return np.zeros((*shape_yx, *array.shape[2:]), np.float32)
    if tuple(array.shape[:2]) == tuple(shape_yx):
        return array
    shrinking = shape_yx[0] < array.shape[0] or shape_yx[1] < array.shape[1]
    out = resize(
        array,
        (*shape_yx, *array.shape[2:]),
        order=1,
        mode="edge",
        anti_aliasing=shrinking,
        preserve_range=True,
    )
    return np.asarray(out, np.float32)


def resize_labels(labels: np.ndarray, shape_yx: tuple[int, int]) -> np.ndarray:
    """Instance ``labels`` (``YX``) resampled to ``shape_yx`` by nearest neighbour (same dtype)."""
    rows = np.minimum(
        (np.arange(shape_yx[0]) + 0.5) * labels.shape[0] / shape_yx[0], labels.shape[0] - 1
    )
    cols = np.minimum(
        (np.arange(shape_yx[1]) + 0.5) * labels.shape[1] / shape_yx[1], labels.shape[1] - 1
    )
    return np.ascontiguousarray(labels[rows.astype(np.intp)][:, cols.astype(np.intp)])


def cell_classes(labels: np.ndarray, boundary_px: int) -> np.ndarray:
    """Per-pixel training classes (``YX`` uint8): 0 background, 1 interior, 2 boundary.

    The boundary is the band of ``boundary_px`` px inside each mask edge, including the edge a
    cell shares with a touching neighbour.

    Examples
    --------
    >>> labels = np.zeros((7, 7), np.uint32); labels[1:6, 1:6] = 1
    >>> cell_classes(labels, 1)[3]
    array([0, 2, 1, 1, 1, 2, 0], dtype=uint8)
    """
    edge = segmentation.find_boundaries(labels, mode="inner")
    if boundary_px > 1:
        edge = ndi.binary_dilation(edge, iterations=boundary_px - 1) & (labels > 0)
    classes = np.where(labels > 0, INTERIOR, BACKGROUND).astype(np.uint8)
    classes[edge] = BOUNDARY
    return classes


def instance_labels(probabilities: np.ndarray, config: CellModelConfig) -> np.ndarray:
    """Instance labels (``YX`` uint32) from probabilities ``(Y, X, 3)`` by seeded watershed.

    Interiors (``p(interior) > marker_threshold``) are the network's cells without their
    boundary band. Where the band between two touching cells is faint, their interiors still
    join at a narrow neck, so seeds are the maxima of the interiors' distance transform
    (smoothed by ``seed_smooth_px``) that stand ``seed_h_px`` above their surroundings, and
    the watershed of the distance grows them over the foreground. Cells the network only
    half-sees (mean foreground probability below ``min_mean_foreground``: blobs of noise in a
    dim field) are dropped.
    """
    return drop_cells(watershed_cells(probabilities, config), probabilities, config)


def watershed_cells(probabilities: np.ndarray, config: CellModelConfig) -> np.ndarray:
    """The seeded watershed of :func:`instance_labels` (``YX`` int), before any cell is dropped.

    Its pixel parameters are in the network's pixels: with ``config.input_scale`` s, distances
    count s per image pixel and areas s².
    """
    scale = config.input_scale  # pixel parameters are in the network's (resized) pixels
    foreground = ndi.binary_fill_holes(
        1.0 - probabilities[..., BACKGROUND] > config.foreground_threshold
    )
    min_marker_px = max(1, round(config.min_marker_px / scale**2))
    interior = morphology.remove_small_objects(
        probabilities[..., INTERIOR] > config.marker_threshold, max_size=min_marker_px - 1
    )
    distance = ndi.distance_transform_edt(interior)
    if scale != 1.0:
        distance *= scale
    if config.seed_smooth_px > 0:
        distance = ndi.gaussian_filter(distance, config.seed_smooth_px / scale)
    seeds = ndi.label(h_maxima_of_parts(distance, config.seed_h_px) & interior)[0]
    return np.asarray(segmentation.watershed(-distance, seeds, mask=foreground))


def h_maxima_of_parts(image: np.ndarray, h: float) -> np.ndarray:
    """``skimage.morphology.h_maxima(image, h)`` (``YX`` uint8) of a float64 image ≥ 0.

    Computed per 8-connected part of ``image > 0`` in its bounding box with a 1 px rim: a
    distance map is 0 on most of a field, where the whole-image reconstruction spent most of
    its sorting. The parts only meet through 0-valued pixels, and there the whole-image
    reconstruction is one value for every such pixel, ``min(0, max(image - h))`` (any two
    pixels are joined by a path whose lowest value is 0); the rim and the other parts' pixels
    in a box hold that value, so every part's reconstruction, and its maxima, are the
    whole image's. Other images (negative values, other dtypes or dimensions) go to
    ``h_maxima`` itself.
    """
    image = np.asarray(image)
    if image.dtype != np.float64 or image.ndim != 2 or not bool((image >= 0).all()):
        return np.asarray(morphology.h_maxima(image, h))
    out = np.zeros(image.shape, np.uint8)
    if h > np.ptp(image):
        return out
    height = image.dtype.type(h)
    # as h_maxima shifts a float image: h and a rounding margin below it
    shifted = image - height - 2 * np.finfo(image.dtype).resolution * np.abs(image)
    between = min(0.0, float(shifted.max()))
    parts = ndi.label(image > 0, structure=np.ones((3, 3), bool))[0]
    for index, box in enumerate(ndi.find_objects(parts), start=1):
        window = tuple(slice(max(axis.start - 1, 0), axis.stop + 1) for axis in box)
        inside = parts[window] == index
        rebuilt = morphology.reconstruction(
            np.where(inside, shifted[window], between),
            np.where(inside, image[window], 0.0),
            method="dilation",
        )
        out[window][inside & (image[window] - rebuilt >= height)] = 1
    return out


def drop_cells(
    labels: np.ndarray, probabilities: np.ndarray, config: CellModelConfig
) -> np.ndarray:
    """``labels`` without cells under ``min_cell_px`` or ``min_mean_foreground``, renumbered."""
    labels = np.asarray(labels)
    if labels.size and labels.min() < 0:
        raise ValueError("cell labels must be >= 0")
    sizes = np.bincount(labels.ravel())
    kept = np.arange(len(sizes))  # a lookup table: label → label, or 0 when dropped
    kept[sizes < config.min_cell_px / config.input_scale**2] = 0
    labels = kept[labels].astype(labels.dtype, copy=False)
    if config.min_mean_foreground > 0 and labels.any():
        ids = np.flatnonzero(np.bincount(labels.ravel()))
        ids = ids[ids > 0]
        confidence = ndi.mean(1.0 - probabilities[..., BACKGROUND], labels, ids)
        kept[ids[np.asarray(confidence) < config.min_mean_foreground]] = 0
        labels = kept[labels].astype(labels.dtype, copy=False)
    return relabel_sequential(labels)


DIHEDRAL: tuple[tuple[int, bool], ...] = tuple(
    (k, flip) for k in range(4) for flip in (False, True)
)
"""The 8 elements of the square's symmetry group: (90° rotations, flip of ``X`` afterwards)."""


def dihedral(image: np.ndarray, rotations: int, flip: bool) -> np.ndarray:
    """``image`` (``YX…``) rotated by ``rotations`` × 90° in ``YX``, then flipped in ``X``."""
    out = np.rot90(image, rotations, axes=(0, 1))
    return np.ascontiguousarray(out[:, ::-1] if flip else out)


def undo_dihedral(image: np.ndarray, rotations: int, flip: bool) -> np.ndarray:
    """The inverse of :func:`dihedral`: back to the original orientation (``YX…``)."""
    out = image[:, ::-1] if flip else image
    return np.ascontiguousarray(np.rot90(out, -rotations, axes=(0, 1)))


@dataclass(frozen=True)
class CellPrediction:
    """The cell model's output for one field: ``YX`` probabilities, features, instance labels."""

    probabilities: np.ndarray
    features: np.ndarray
    labels: np.ndarray


class CellModel:
    """A trained cell model: network, post-processing and type classifier. Load once, reuse.

    ``int8_model``: the int8 ONNX network of the same weights, run where ONNX Runtime runs
    (:mod:`overnight.models.quantize`; not for a model whose classifier reads the network's
    features); None runs the float32 network.
    """

    def __init__(
        self,
        config: CellModelConfig,
        network: object,
        classifier: TypeClassifier | None,
        int8_model: bytes | None = None,
    ) -> None:
        from overnight.models.runtime import network_predictor

        self.config = config
        self.network = network
        self.classifier = classifier
        with_features = config.type_network_features
        self.int8 = int8_model is not None and not with_features
        # the features only feed a classifier trained on them: no field-sized copy otherwise
        self._predict = network_predictor(
            network,
            config.unet,
            with_features=with_features,
            int8_model=int8_model if self.int8 else None,
        )

    def with_config(self, config: CellModelConfig) -> CellModel:
        """The same network and inference session with another ``config`` (scale, seeding)."""
        if config.unet != self.config.unet:
            raise ValueError("with_config changes post-processing, not the network")
        twin = copy.copy(self)
        twin.config = config
        return twin

    @classmethod
    def load(cls, model_dir: Path) -> CellModel:
        """The cell model in ``model_dir``: config, weights, classifier, int8 network if current."""
        from overnight.models.loading import load_network
        from overnight.models.quantize import int8_model
        from overnight.models.runtime import int8_enabled

        config, network = load_network(model_dir, CellModelConfig)
        int8 = int8_model(model_dir) if int8_enabled() else None
        return cls(config, network, TypeClassifier.load(model_dir), int8)

    def probabilities(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities ``(Y, X, 3)`` and features ``(Y, X, F)`` of a normalised ``YX`` image.

        With ``config.tta`` both are the means over the 8 flips and 90° rotations of the image,
        each mapped back to the image's orientation (8× the inference time). With
        ``config.input_scale`` ≠ 1 the network reads the image resized by it, and both are
        resized back.
        """
        scale = self.config.input_scale
        if scale == 1.0:
            return self._augmented(image)
        shape_yx = (int(image.shape[0]), int(image.shape[1]))
        probs, features = self._augmented(resize_yx(image, scaled_shape(shape_yx, scale)))
        return resize_yx(probs, shape_yx), resize_yx(features, shape_yx)

    def _augmented(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`probabilities` at the network's scale (with ``config.tta``, averaged)."""
        if not self.config.tta:
            return self._tiled(image)
        probs_sum, features_sum = self._tiled(image)  # the identity, DIHEDRAL[0]
        for rotations, flip in DIHEDRAL[1:]:
            probs, features = self._tiled(dihedral(image, rotations, flip))
            probs_sum += undo_dihedral(probs, rotations, flip)
            features_sum += undo_dihedral(features, rotations, flip)
        return probs_sum / len(DIHEDRAL), features_sum / len(DIHEDRAL)

    def _tiled(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tiled network outputs ``(Y, X, 3)`` and ``(Y, X, F)`` of one ``YX`` image.

        ``F`` is 0 when the model's classifier does not use the network's features
        (``config.type_network_features`` false).
        """
        from overnight.models.tiling import predict_tiled

        outputs = predict_tiled(
            self._predict,
            image[..., None],
            self.config.tile_px,
            self.config.tile_overlap_px,
            self.config.unet.size_multiple_px,
        )
        if len(outputs) == 1:
            return outputs[0], np.zeros((*outputs[0].shape[:-1], 0), np.float32)
        probs, features = outputs
        return probs, features

    def segment(self, volume: np.ndarray) -> CellPrediction:
        """Segment the cells of a ``ZYX`` (or ``YX``) cell channel."""
        probs, features = self.probabilities(cell_input(volume, self.config))
        return CellPrediction(probs, features, instance_labels(probs, self.config))

    def classify(
        self, labels: np.ndarray, features: np.ndarray, pixel_size_um: float
    ) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
        """Cell ids, type names and confidences for the cells of ``labels``.

        Without a classifier (a model trained on data with no types) every cell gets the
        first configured type, or ``""``, with confidence NaN.
        """
        network_features = features if self.config.type_network_features else None
        ids, rows = cell_features(labels, network_features, pixel_size_um)
        if self.classifier is None:
            name = self.config.cell_types[0] if self.config.cell_types else ""
            return ids, (name,) * len(ids), np.full(len(ids), np.nan)
        names, confidence = self.classifier.predict(rows)
        return ids, names, confidence
