"""A lab member's step loads through the ``overnight.steps`` entry point, no library edit."""

import sys
from pathlib import Path

import numpy as np
import pytest

from overnight.errors import StepError
from overnight.pipeline import registry
from overnight.pipeline.definition import PipelineConfig, StepConfig, bind_pipeline
from overnight.pipeline.runner import PreparedPipeline

PLUGIN_DIR = Path(__file__).parent / "example_plugin"


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """Make the example package look installed: a dist-info with its entry point on sys.path."""
    dist = tmp_path / "overnight_example_steps-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: overnight-example-steps\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(
        "[overnight.steps]\ncell_brightness = overnight_example_steps:cell_brightness\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    # restored with the registry: built-ins loaded into the copy must not look loaded after it
    monkeypatch.setattr(registry, "_builtins_loaded", registry._builtins_loaded)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    yield
    sys.modules.pop("overnight_example_steps", None)


def test_plugin_step_is_found_by_name(installed_plugin):
    spec = registry.get_step("cell_brightness")
    assert spec.version == "0.1"
    assert spec.requires == ("cell_image", "cell_labels")
    assert "cell_brightness" in registry.available_steps()


def test_plugin_step_runs_in_a_pipeline(installed_plugin):
    config = PipelineConfig(
        name="with-plugin",
        inputs=("cell_image", "cell_labels"),
        steps=(StepConfig(step="cell_brightness"),),
    )
    pipeline = bind_pipeline(config, {})
    image = np.zeros((6, 6), np.float32)
    image[:3] = 10.0
    labels = np.zeros((6, 6), np.uint32)
    labels[:3, :3] = 1
    labels[3:, 3:] = 2
    run = PreparedPipeline(pipeline).run({"cell_image": image, "cell_labels": labels})
    assert run.values["cell_brightness"] == {1: 10.0, 2: 0.0}


def test_unknown_step_names_the_known_ones():
    with pytest.raises(StepError, match="unknown step 'no_such_step'.*detect_pnps"):
        registry.get_step("no_such_step")
