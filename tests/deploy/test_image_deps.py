"""What each image installs, checked without Docker: the model-free images stay small.

The api (ingest API, watcher) and dispatcher images install only the core dependencies
(plus ``dispatch``); the qc-web adds ``qc`` (Matplotlib, Pillow: no SciPy, scikit-image or
imagecodecs); only the workers add ``analysis`` and ``models``. These
tests import each model-free service in a fresh interpreter in which the packages its image
lacks cannot be imported, so a module-level ``import scipy`` reached from a service fails
here before it fails in a container.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = ROOT / "scripts" / "extras.py"
#: The import names of what the `analysis` and `models` extras install.
ANALYSIS = ("scipy", "skimage", "matplotlib", "imagecodecs", "PIL")
MODELS = ("tensorflow", "keras")
#: What the `analysis` extra has and the qc-web image (the `qc` extra) does not.
NOT_IN_QC = ("scipy", "skimage", "imagecodecs")
#: Service modules (what `overnight ingest serve|watch`, `dispatch run`, `qc-web` import) and
#: the packages their image does not have.
SERVICES = {
    "overnight_ingest.app": ANALYSIS + MODELS + ("kubernetes",),
    "overnight_ingest.watcher": ANALYSIS + MODELS + ("kubernetes",),
    "overnight_dispatch.dispatcher": ANALYSIS + MODELS,
    "overnight_qc.app": NOT_IN_QC + MODELS + ("kubernetes",),
    "overnight.cli.main": ANALYSIS + MODELS + ("kubernetes",),
}

BLOCKER = """
import importlib, sys
blocked = set(sys.argv[1].split(","))
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"{name} is not in this image", name=name)
        return None
sys.meta_path.insert(0, Blocker())
importlib.import_module(sys.argv[2])
"""


def _lines(*args: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, str(EXTRAS), "--pyproject", str(ROOT / "pyproject.toml"), *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [
        line.split(";")[0].split(">")[0].split("=")[0].split("[")[0].strip().lower()
        for line in out.splitlines()
        if line.strip()
    ]


@pytest.mark.parametrize("module", sorted(SERVICES))
def test_model_free_services_import_without_what_their_image_lacks(module: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(SERVICES[module]), module],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, f"{module} needs a package its image lacks:\n{proc.stderr[-3000:]}"


def test_every_builtin_pipeline_loads_without_the_analysis_extra() -> None:
    """What ``POST /datasets`` and the watcher do before enqueueing: load the pipeline."""
    code = (
        "from overnight.pipeline.definition import builtin_pipelines, load_pipeline\n"
        "names = builtin_pipelines()\n"
        "assert names, 'no built-in pipeline'\n"
        "for name in names: load_pipeline(name)\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCKER.replace("importlib.import_module(sys.argv[2])", code),
            ",".join(ANALYSIS + MODELS + ("kubernetes",)),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, (
        f"a pipeline needs the analysis extra to load:\n{proc.stderr[-3000:]}"
    )


#: What the QC web's pages and edits run (outlines, Poisson histogram, label edits), in an
#: interpreter without SciPy, scikit-image or imagecodecs: a lazy import reached at run time
#: (not only at import) fails here.
QC_RUNTIME = """
import io
import numpy as np
import tifffile
from overnight.review import edits, overlay, stats
labels = np.zeros((40, 50), np.uint16)
labels[5:15, 5:20] = 1
labels[20:35, 10:30] = 2
buffer = io.BytesIO()
tifffile.imwrite(buffer, labels, compression="zlib")  # labels.tif as the workers write it
labels = overlay.read_labels(buffer.getvalue())
assert len(overlay.cell_outlines(labels, {1: "a"}, {"a": "#fff"})) == 2
assert overlay.labels_png(labels, {1: "a"}, {"a": "#ffffff"})[1:4] == b"PNG"
histogram = stats.count_histogram("a", np.array([0, 1, 1, 2, 5]))
assert abs(sum(histogram.poisson) - 5) < 0.1, histogram.poisson
split, new_id = edits.split_cell(labels, 2, [(18.0, 20.0), (37.0, 20.0)])
assert new_id == 3 and set(np.unique(split)) == {0, 1, 2, 3}
polygon = edits.polygon_mask(labels.shape, [(36, 35), (39, 45), (30, 48)])
assert edits.draw_cell(labels, polygon)[1] == 3
brush = edits.brush_mask(labels.shape, [(2.0, 40.0), (8.0, 45.0)], 2.5)
assert edits.draw_cell(labels, brush)[1] == 3
from overnight.review.plots import histogram_svg
assert histogram_svg(histogram).lstrip().startswith(b"<")
"""


def test_the_qc_web_runs_without_scipy_scikit_image_and_imagecodecs() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCKER.replace("importlib.import_module(sys.argv[2])", QC_RUNTIME),
            ",".join(NOT_IN_QC + MODELS + ("kubernetes",)),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, (
        f"the QC web needs a package its image lacks:\n{proc.stderr[-3000:]}"
    )


def test_a_lazy_module_names_the_extra_when_it_is_missing() -> None:
    from overnight.lazy import lazy_module

    missing = lazy_module("overnight_no_such_module_for_the_test")
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'overnight\[analysis\]'"):
        missing.anything  # noqa: B018


def test_the_core_holds_no_analysis_library() -> None:
    core = _lines()
    for name in ("scipy", "scikit-image", "matplotlib", "imagecodecs", "tensorflow-cpu", "keras"):
        assert name not in core, f"{name} is a core dependency: every image would carry it"
    assert {"numpy", "pandas", "tifffile"} <= set(core)


def test_the_qc_extra_holds_no_scipy_scikit_image_or_imagecodecs() -> None:
    qc = set(_lines("--only", "qc"))
    assert {"matplotlib", "pillow"} <= qc
    assert not qc & {"scipy", "scikit-image", "imagecodecs", "tensorflow-cpu", "keras"}


def test_the_worker_extras_expand_the_analysis_extra() -> None:
    analysis = set(_lines("--only", "analysis"))
    assert {"scipy", "scikit-image", "matplotlib", "imagecodecs"} <= analysis
    for extra in ("models", "gpu"):
        assert analysis <= set(_lines("--only", extra)), extra
    assert not any(line.startswith("overnight") for line in _lines("--only", "models"))


def test_the_test_extra_installs_every_library_the_suite_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (self_ref,) = [
        d for d in project["optional-dependencies"]["test"] if d.startswith("overnight[")
    ]
    assert {"qc", "analysis", "models", "dispatch"} <= set(
        self_ref[len("overnight[") : -1].split(",")
    )


def _stage(dockerfile: str, header: str) -> str:
    return dockerfile.split(header, 1)[1].split("\nFROM ", 1)[0]


def test_qc_web_image_installs_the_qc_extra_and_the_workers_the_analysis_extra() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY --from=deps-qc /opt/venv /opt/venv" in _stage(dockerfile, "FROM runtime AS qc-web")
    assert "--requirement qc.txt" in _stage(dockerfile, "FROM deps AS deps-qc")
    assert "--requirement analysis.txt" in _stage(dockerfile, "FROM deps AS deps-analysis")
    for stage in ("FROM deps-analysis AS deps-models", "FROM deps-analysis AS deps-gpu"):
        assert stage in dockerfile, stage
    # the classic builder builds every stage before the target: qc-web comes before analysis
    assert dockerfile.index("AS qc-web") < dockerfile.index("AS deps-analysis")
    api = dockerfile.split("FROM runtime AS api", 1)[1].split("\nFROM ", 1)[0]
    assert "COPY --from=deps-api /opt/venv /opt/venv" in api
    assert "--requirement ${OVERNIGHT_FORMATS}.txt" in _stage(dockerfile, "FROM deps AS deps-api")


# --- microscope file readers in the worker images ------------------------------------------

#: What the worker images read vendor files and OME-Zarr with (`formats-bsd`), and the GPL
#: reader only `--build-arg OVERNIGHT_FORMATS=formats` adds.
FORMATS_BSD = {"nd2", "liffile", "zarr"}
GPL_READERS = {"aicspylibczi", "readlif", "bioio-czi", "bioio-lif", "pylibczirw"}


def test_the_bsd_formats_extra_holds_the_readers_and_nothing_gpl() -> None:
    bsd = set(_lines("--only", "formats-bsd"))
    assert bsd == FORMATS_BSD
    assert set(_lines("--only", "formats")) == FORMATS_BSD | {"aicspylibczi"}
    for extra in ("models", "gpu", "analysis"):
        assert not set(_lines("--only", extra)) & GPL_READERS, extra


def _licence_text(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    fields = [meta.get("License") or "", meta.get("License-Expression") or ""]
    fields += [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    return " | ".join(fields)


def _closure(names: set[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions ``names`` need, transitively (extras and markers off)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            seen[name] = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a dependency for another platform or Python
        for requirement in seen[name].requires or []:
            head, _, marker = requirement.partition(";")
            if "extra" in marker:
                continue
            todo.append(re.split(r"[\s<>=!~\[(]", head.strip(), maxsplit=1)[0])
    return seen


def test_nothing_the_worker_images_read_files_with_is_gpl() -> None:
    """The installed dependency closure of `formats-bsd`: no GPL licence (LGPL aside)."""
    closure = _closure(FORMATS_BSD)
    assert FORMATS_BSD <= set(closure), f"install the formats extra: {sorted(closure)}"
    gpl = {
        name: text
        for name, dist in closure.items()
        if re.search(r"(?<!L)GPL|(?<!Lesser )General Public License", text := _licence_text(dist))
    }
    assert not gpl, f"GPL packages in the worker images' readers: {gpl}"
    assert "GPL" in _licence_text(metadata.distribution("aicspylibczi")), "the check can fail"


def test_worker_and_api_images_install_the_bsd_readers_and_czi_only_on_request() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    requirements = _stage(dockerfile, "AS requirements")
    assert "formats-bsd formats;" in requirements, "both lists are written"
    # the workers read the pixels; the api (ingest, watcher) reads the headers that say how
    # many scenes / timepoints a file holds, to list one image per part
    for header in (
        "FROM deps-analysis AS deps-models",
        "FROM deps-analysis AS deps-gpu",
        "FROM deps AS deps-api",
    ):
        stage = _stage(dockerfile, header)
        assert "ARG OVERNIGHT_FORMATS=formats-bsd" in stage, header
        assert "--requirement ${OVERNIGHT_FORMATS}.txt" in stage, header
    for header in ("FROM runtime AS worker\n", "FROM runtime AS worker-gpu"):
        assert "COPY --from=deps-" in _stage(dockerfile, header), header
    for header in ("FROM deps AS deps-qc", "FROM deps AS deps-dispatch"):
        assert "OVERNIGHT_FORMATS" not in _stage(dockerfile, header), header


#: What a worker does with a `.nd2`, a `.lif` and a `.czi` in an image built with the default
#: `formats-bsd` (aicspylibczi blocked): the first two are read, the third is refused with
#: how to get it.
WORKER_FORMATS_RUNTIME = """
from pathlib import Path
from overnight.errors import InvalidImageError
from overnight.imaging.reader import image_parts, read_stack
vendor = Path("tests/data/vendor")
assert len(image_parts(vendor / "cluster.nd2")) == 3
assert read_stack(vendor / "cluster.nd2", timepoint=1).shape_zcyx == (10, 2, 31, 38)
lif = vendor / "LeicaLASX_wavelength-sweep_example.lif"
assert read_stack(lif, scene=0).shape_zcyx == (1, 20, 64, 64)
try:
    read_stack(vendor / "s_1_t_1_c_1_z_1.czi")
except InvalidImageError as err:
    assert "aicspylibczi" in str(err) and "overnight[formats]" in str(err), err
else:
    raise AssertionError("a .czi was read without aicspylibczi")
"""


def test_a_worker_without_the_gpl_reader_reads_nd2_and_lif_and_explains_czi() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCKER.replace("importlib.import_module(sys.argv[2])", WORKER_FORMATS_RUNTIME),
            "aicspylibczi,readlif,bioio_czi,bioio_lif,pylibCZIrw",  # import names
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, f"the worker's readers need a GPL package:\n{proc.stderr[-3000:]}"


#: What the ingest API and the watcher list from a folder of vendor files in the api image
#: (`formats-bsd`, no analysis libraries, no aicspylibczi): every timepoint of the `.nd2` and
#: every scene of the `.lif` is an image; a `.czi` is one key, which the worker refuses with
#: the reason (an image built with `OVERNIGHT_FORMATS=formats` lists its parts too).
API_LISTING_RUNTIME = """
from overnight.jobs.sources import list_source
from overnight.storage import open_store
keys = [info.key for info in list_source(open_store("tests/data/vendor")).images]
assert [k for k in keys if k.startswith("cluster.nd2")] == [
    f"cluster.nd2#t00{t}" for t in range(3)
], keys
assert sum(k.startswith("LeicaLASX_wavelength-sweep_example.lif#s") for k in keys) == 4, keys
assert "CD_s_1_t_3_c_2_z_5.czi" in keys, keys
"""


def test_the_api_image_lists_every_part_of_an_nd2_and_a_lif() -> None:
    blocked = ANALYSIS + MODELS + ("kubernetes", "aicspylibczi")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCKER.replace("importlib.import_module(sys.argv[2])", API_LISTING_RUNTIME),
            ",".join(blocked),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, f"the api image lists vendor parts wrong:\n{proc.stderr[-3000:]}"
