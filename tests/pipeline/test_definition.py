"""Pipeline files: validated before any image is read."""

import pytest

from overnight.errors import ConfigError, StepError
from overnight.pipeline.definition import builtin_pipelines, is_series_pipeline, load_pipeline


def test_builtin_pipelines_load_and_describe():
    assert {"cytometry", "cytometry-classical"} <= set(builtin_pipelines())
    pipeline = load_pipeline("cytometry-classical")
    described = pipeline.describe()
    assert [s["step"] for s in described["steps"]][:2] == ["select_channels", "locate_cells"]
    assert pipeline.stages == ("segmentation", "counting")


def test_overrides_reach_step_parameters():
    pipeline = load_pipeline("cytometry-classical", {"detect_pnps": {"threshold_sd": 5.0}})
    params = {s.spec.name: s.params for s in pipeline.steps}
    assert params["detect_pnps"].threshold_sd == 5.0


def test_bad_parameter_is_a_config_error_naming_the_step(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\nsteps:\n  - step: detect_pnps\n    params: {threshold_sd: lots}\n"
        "  - step: select_channels\n"
    )
    with pytest.raises(ConfigError, match="detect_pnps"):
        load_pipeline(path)


def test_missing_input_is_caught_at_load_time(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nsteps:\n  - step: count_pnps\n")
    with pytest.raises(StepError, match="count_pnps.*needs"):
        load_pipeline(path)


def test_unknown_pipeline_lists_the_builtins():
    with pytest.raises(ConfigError, match="cytometry"):
        load_pipeline("no-such-pipeline")


def test_override_of_absent_step_is_refused():
    with pytest.raises(ConfigError, match="not in the pipeline"):
        load_pipeline("cytometry-classical", {"nope": {}})


def test_series_pipelines_are_told_apart():
    assert is_series_pipeline("skin-pk")
    assert not is_series_pipeline("cytometry-classical")


def test_skin_pk_is_a_pipeline_of_registered_steps():
    pipeline = load_pipeline("skin-pk", {"drug_profiles": {"calibration": 2.0}})
    assert pipeline.is_series and not load_pipeline("cytometry-classical").is_series
    assert [b.spec.name for b in pipeline.steps] == [
        "read_series",
        "segment_compartments",
        "drug_profiles",
        "nca",
        "pk_plots",
    ]
    assert pipeline.steps[2].params.calibration == 2.0
    with pytest.raises(ConfigError, match="drug_profiles"):
        load_pipeline("skin-pk", {"drug_profiles": {"calibration": -1}})
