import datetime as dt
import json
import logging
import random
import string
from pathlib import Path

import pytest
from pydantic import ValidationError

from overnight.errors import MetadataError
from overnight.metadata import (
    DEPTH_UNITS_UM,
    ImageMetadata,
    depth_um,
    format_name,
    metadata_for,
    numeric_field,
    parse_folder_name,
    parse_name,
    timepoint_min,
)

EXAMPLE = "20261125_0930_jdoe_darkfield1_S03_drug-ruxolitinib_dose-10uM_field-007.ome.tif"


def test_parse_the_documented_example() -> None:
    meta = parse_name(EXAMPLE)
    assert meta == ImageMetadata(
        date=dt.date(2026, 11, 25),
        time=dt.time(9, 30),
        user="jdoe",
        instrument="darkfield1",
        sample="S03",
        extra={"drug": "ruxolitinib", "dose": "10uM", "field": "007"},
    )
    assert meta.as_flat_dict() == {
        "date": "2026-11-25",
        "time": "09:30:00",
        "user": "jdoe",
        "instrument": "darkfield1",
        "sample": "S03",
        "drug": "ruxolitinib",
        "dose": "10uM",
        "field": "007",
    }
    assert list(meta.as_flat_dict())[:5] == ["date", "time", "user", "instrument", "sample"]
    assert format_name(meta) + ".ome.tif" == EXAMPLE


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("20261125_0930_a_b_c.tif", {}),
        ("20261125_0930_a_b_c_conc-1-2mM.tif", {"conc": "1-2mM"}),
        ("20261125_0930_a_b_c_temp--4C.TIFF", {"temp": "-4C"}),
        ("20261125_0930_a_b_c_lot-A-17-b_depth-20.5um", {"lot": "A-17-b", "depth": "20.5um"}),
        ("20261125_0930_a_b_c_dose-10µM.ome.tiff", {"dose": "10µM"}),
    ],
)
def test_extras_split_at_the_first_dash(name: str, extra: dict[str, str]) -> None:
    assert parse_name(name).extra == extra


def test_seconds_and_directories() -> None:
    meta = parse_name("/data/run1/20261125_093015_jdoe_df1_S03.tif")
    assert meta.time == dt.time(9, 30, 15)
    assert format_name(meta) == "20261125_093015_jdoe_df1_S03"
    assert format_name(parse_name("20261125_093000_jdoe_df1_S03")) == "20261125_0930_jdoe_df1_S03"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("20261345_0930_jdoe_df1_S03.tif", "date '20261345' is not a calendar date"),
        ("20260230_0930_jdoe_df1_S03.tif", "date '20260230' is not a calendar date"),
        ("2026-11-25_0930_jdoe_df1_S03.tif", "is not YYYYMMDD"),
        ("20261125_2561_jdoe_df1_S03.tif", "time '2561' is not a time of day"),
        ("20261125_930_jdoe_df1_S03.tif", "is not HHMM or HHMMSS"),
        ("20261125_0930_jdoe_df1.tif", "fewer than 5"),
        ("field_007.tif", "fewer than 5"),
        ("img.tif", "fewer than 5"),
        ("20261125_0930_jdoe_df1_drug-rux.tif", "sample 'drug-rux' must be letters and digits"),
        ("20261125_0930_j.doe_df1_S03.tif", "user 'j.doe' must be"),
        ("20261125_0930_jdoe_df1_S03_field7.tif", "field 'field7' is not key-value"),
        ("20261125_0930_jdoe_df1_S03_Drug-rux.tif", "key 'Drug' must be lower-case"),
        ("20261125_0930_jdoe_df1_S03_2x-rux.tif", "key '2x' must be"),
        ("20261125_0930_jdoe_df1_S03_drug-.tif", "must be non-empty"),
        ("20261125_0930_jdoe_df1_S03_time-30min.tif", "use 'timepoint'"),
        ("20261125_0930_jdoe_df1_S03_sample-2.tif", "key 'sample' is one of the fixed fields"),
        ("20261125_0930_jdoe_df1_S03_a-1_a-2.tif", "key 'a' appears twice"),
    ],
)
def test_names_off_the_convention(name: str, problem: str) -> None:
    with pytest.raises(MetadataError, match=problem.replace("(", r"\(").replace(".", r"\.")):
        parse_name(name)


def random_metadata(rng: random.Random) -> ImageMetadata:
    alnum = string.ascii_letters + string.digits
    value_chars = alnum + "-.+µ%"

    def word(chars: str, first: str = "") -> str:
        return (rng.choice(first) if first else "") + "".join(
            rng.choice(chars) for _ in range(rng.randint(0 if first else 1, 6))
        )

    keys = {
        word(string.ascii_lowercase + string.digits, string.ascii_lowercase)
        for _ in range(rng.randint(0, 5))
    } - {"date", "time", "user", "instrument", "sample"}
    return ImageMetadata(
        date=dt.date(1, 1, 1) + dt.timedelta(days=rng.randint(0, 3_000_000)),
        time=dt.time(rng.randint(0, 23), rng.randint(0, 59), rng.choice([0, rng.randint(0, 59)])),
        user=word(alnum),
        instrument=word(alnum),
        sample=word(alnum),
        extra={key: word(value_chars) for key in keys},
    )


def test_format_then_parse_round_trips() -> None:
    rng = random.Random(20261125)
    for _ in range(2000):
        meta = random_metadata(rng)
        name = format_name(meta)
        assert parse_name(name) == meta, name
        assert parse_name(name + ".ome.tif") == meta
        assert format_name(parse_name(name)) == name


@pytest.mark.parametrize(
    "fields",
    [
        {"user": "j_doe"},
        {"sample": "S-03"},
        {"extra": {"time": "30min"}},
        {"extra": {"drug": "a_b"}},
        {"extra": {"Drug": "rux"}},
        {"time": dt.time(9, 30, 0, 5)},
    ],
)
def test_invalid_metadata_cannot_be_built(fields: dict) -> None:
    base = {
        "date": dt.date(2026, 11, 25),
        "time": dt.time(9, 30),
        "user": "jdoe",
        "instrument": "df1",
        "sample": "S03",
    }
    with pytest.raises(ValidationError):
        ImageMetadata(**(base | fields))


def test_folder_names() -> None:
    assert parse_folder_name("drug-rux_formulation-transcutol") == {
        "drug": "rux",
        "formulation": "transcutol",
    }
    for name in ("images", "20261125_jdoe_S03", "raw data", "sample-S03", "Drug-rux"):
        assert parse_folder_name(name) is None


def image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_metadata_for_merges_folders_name_and_sidecars(tmp_path: Path) -> None:
    path = image(
        tmp_path
        / "study"
        / "drug-rux_formulation-transcutol"
        / "timepoint-30min"
        / "20261125_1412_amir_srs2_skin4_depth-20um_drug-ruxolitinib.tif"
    )
    resolved = metadata_for(path, root=tmp_path / "study")
    assert resolved.warnings == ()
    assert resolved.parsed is not None and resolved.parsed.sample == "skin4"
    assert resolved.fields == {
        "drug": "ruxolitinib",  # the name overrides its folder
        "formulation": "transcutol",
        "timepoint": "30min",
        "date": "2026-11-25",
        "time": "14:12:00",
        "user": "amir",
        "instrument": "srs2",
        "sample": "skin4",
        "depth": "20um",
    }
    # without root only the image's own folder counts
    assert "formulation" not in metadata_for(path).fields
    assert metadata_for(path).fields["timepoint"] == "30min"


def test_sidecars_add_and_override(tmp_path: Path) -> None:
    path = image(tmp_path / "20261125_0930_jdoe_df1_S03_dose-10uM.ome.tif")
    (tmp_path / (path.name + ".json")).write_text(
        json.dumps({"dose": "20uM", "drug_lot": "A7", "replicate": 2, "fixed": True})
    )
    (tmp_path / "20261125_0930_jdoe_df1_S03_dose-10uM.meta.json").write_text(
        json.dumps({"replicate": "3", "sample": "S04"})
    )
    resolved = metadata_for(path)
    assert resolved.warnings == ()
    assert resolved.parsed is not None and resolved.parsed.sample == "S03"
    assert resolved.fields["dose"] == "20uM"
    assert resolved.fields["drug_lot"] == "A7"
    assert resolved.fields["fixed"] == "true"
    assert resolved.fields["replicate"] == "3"
    assert resolved.fields["sample"] == "S04"


def test_sidecar_problems_are_warnings(tmp_path: Path) -> None:
    path = image(tmp_path / "20261125_0930_jdoe_df1_S03.tif")
    (tmp_path / "20261125_0930_jdoe_df1_S03.tif.json").write_text("{not json")
    (tmp_path / "20261125_0930_jdoe_df1_S03.meta.json").write_text(
        json.dumps({"ok": "1", "Bad Key": "x", "nested": {"a": 1}})
    )
    resolved = metadata_for(path)
    assert resolved.fields["ok"] == "1"
    assert len(resolved.warnings) == 3
    assert "not readable JSON" in resolved.warnings[0]
    assert "'Bad Key'" in resolved.warnings[1]
    assert "'nested'" in resolved.warnings[2]


def test_off_convention_name_gives_one_warning_and_no_fields(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = image(tmp_path / "images" / "20261345_0930_jdoe_df1_S03.tif")
    with caplog.at_level(logging.WARNING, logger="overnight.metadata"):
        resolved = metadata_for(path)
    assert resolved.parsed is None
    assert resolved.fields == {}
    assert len(resolved.warnings) == 1
    assert resolved.warnings[0].startswith("20261345_0930_jdoe_df1_S03.tif: name does not follow")
    assert "date '20261345' is not a calendar date" in resolved.warnings[0]
    assert [r.getMessage() for r in caplog.records] == list(resolved.warnings)
    assert caplog.records[0].image_id == "20261345_0930_jdoe_df1_S03"


@pytest.mark.parametrize(
    ("fields", "minutes"),
    [
        ({"timepoint": "30min"}, 30.0),
        ({"t": "1.5h"}, 90.0),
        ({"t": "90s"}, 1.5),
        ({"timepoint": "45"}, 45.0),
        ({"timepoint": "5min", "t": "9"}, 5.0),
        ({}, None),
    ],
)
def test_timepoint_min(fields: dict[str, str], minutes: float | None) -> None:
    assert timepoint_min(fields) == (None if minutes is None else pytest.approx(minutes))


@pytest.mark.parametrize(
    ("fields", "micrometres"),
    [
        ({"depth": "20um"}, 20.0),
        ({"z": "0.02mm"}, 20.0),
        ({"depth": "20µm"}, 20.0),
        ({"depth": "500nm"}, 0.5),
        ({"depth": ".5"}, 0.5),
    ],
)
def test_depth_um(fields: dict[str, str], micrometres: float) -> None:
    assert depth_um(fields) == pytest.approx(micrometres)


@pytest.mark.parametrize("value", ["deep", "20 parsecs", "20km", "", "1.2.3um"])
def test_malformed_numbers_raise(value: str) -> None:
    with pytest.raises(MetadataError, match=f"depth={value!r} is not a number"):
        numeric_field({"depth": value}, "depth", DEPTH_UNITS_UM)


def test_numbers_from_a_parsed_name() -> None:
    fields = parse_name("20261125_1412_amir_srs2_skin4_timepoint-30min_depth-20um").as_flat_dict()
    assert (timepoint_min(fields), depth_um(fields)) == (30.0, 20.0)
