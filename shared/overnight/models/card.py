"""The model card: what a saved model is, how it was trained and how well it did (``card.json``)."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from overnight.models.datasets import TrainingSplit, dataset_hash
from overnight.models.training import FitResult

CARD_FILE = "card.json"
_LIBRARIES = (
    "overnight",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "numpy",
    "scikit-image",
    "scipy",
)


class ModelCard(BaseModel):
    """Documentation saved beside the weights of every trained model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: str = Field(description="cells or pnp")
    architecture: str
    parameters: int = Field(description="trainable weights")
    hyper_parameters: dict[str, Any] = Field(description="the model's config.json")
    channel_roles: dict[str, str] = Field(description="what each input channel holds")
    pixel_size_um: float | None
    training_data: str = Field(description="folder the model was trained on")
    training_data_sha256: str
    n_train_images: int
    n_val_images: int
    val_images: tuple[str, ...] = Field(description="image ids kept aside for validation")
    initial_weights: str | None = Field(None, description="weights training started from, if any")
    provenance: tuple[str, ...] = Field(
        (),
        description="earlier training runs behind ``initial_weights``, oldest first",
    )
    epochs_run: int
    training_seconds: float
    metrics: dict[str, float] = Field(description="validation metrics")
    flops_per_field: float | None = Field(
        None, description="forward-pass FLOP on the reference field"
    )
    training_ranges: dict[str, Any] | None = Field(
        None,
        description="the generator ranges the training images were drawn from (their "
        "synth.json), when they are synthetic: the range the model is known to hold on",
    )
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    libraries: dict[str, str] = Field(default_factory=lambda: library_versions())
    machine: str = Field(default_factory=lambda: f"{platform.machine()} {platform.system()}")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a model depends on."""
    found = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def lineage(initial_weights: Path | None) -> tuple[str, ...]:
    """The runs behind ``initial_weights``: its model's provenance, then that model's own run."""
    if initial_weights is None:
        return ()
    card_path = Path(initial_weights).parent / CARD_FILE
    if not card_path.is_file():
        return (f"{initial_weights}: weights of unknown origin (no {CARD_FILE} beside them)",)
    card = json.loads(card_path.read_text())
    run = (
        f"{card.get('name')}: {card.get('epochs_run')} epochs, {card.get('training_seconds')} s "
        f"on {card.get('training_data')} (sha256 {str(card.get('training_data_sha256'))[:12]}), "
        f"from {card.get('initial_weights') or 'random initial weights'}; "
        f"metrics {card.get('metrics')}; {card.get('created')}"
    )
    return (*card.get("provenance", ()), run)


def trained_card(
    out_dir: Path,
    kind: str,
    architecture: str,
    config: BaseModel,
    network: Any,
    split: TrainingSplit,
    result: FitResult,
    metrics: dict[str, float],
    initial_weights: Path | None = None,
    **fields: Any,
) -> ModelCard:
    """The card of a model just trained on ``split`` (name from ``out_dir``, metrics rounded)."""
    return ModelCard(
        name=out_dir.name,
        kind=kind,
        architecture=architecture,
        parameters=int(network.count_params()),
        hyper_parameters=config.model_dump(mode="json"),
        pixel_size_um=getattr(config, "pixel_size_um", None),
        training_data=str(split.data_dir),
        training_data_sha256=dataset_hash(split.paths),
        n_train_images=split.n_train,
        n_val_images=len(split.val_paths),
        val_images=tuple(p.name for p in split.val_paths),
        epochs_run=result.epochs_run,
        training_seconds=round(result.seconds, 1),
        metrics={k: round(float(v), 4) for k, v in metrics.items()},
        initial_weights=str(initial_weights) if initial_weights else None,
        provenance=lineage(initial_weights),
        training_ranges=synthetic_ranges(split.data_dir),
        **fields,
    )


def synthetic_ranges(data_dir: Path) -> dict[str, Any] | None:
    """The ranges in ``data_dir/synth.json`` (a synthetic training set), else None."""
    manifest = Path(data_dir) / "synth.json"
    if not manifest.is_file():
        return None
    ranges = json.loads(manifest.read_text()).get("ranges")
    return dict(ranges) if isinstance(ranges, dict) else None


def save_card(card: ModelCard, model_dir: Path) -> Path:
    """Write ``card.json`` in ``model_dir``."""
    path = model_dir / CARD_FILE
    path.write_text(card.model_dump_json(indent=2) + "\n")
    return path
