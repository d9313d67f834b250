"""The per-image Job manifest: names, labels, failure policy, schema validity, CLI output."""

from __future__ import annotations

import random
import re

import pytest
import yaml
from click.testing import CliRunner

from overnight.cli.main import cli
from overnight.dispatch import (
    BAD_IMAGE_EXIT_CODE,
    DispatchSettings,
    JobTemplate,
    Resources,
    SecretEnv,
    Toleration,
    build_drain_job,
    build_job,
    job_name,
    label_value,
)

DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
ALPHABET = "abcXYZ019-_. /äöüµ漢字😀\t"


def _random_id(rng: random.Random) -> str:
    length = rng.choice([1, 5, 20, 63, 64, 100, 300])
    return "".join(rng.choice(ALPHABET) for _ in range(length))


def test_job_names_are_dns_safe_and_unique_for_10000_random_pairs() -> None:
    rng = random.Random(20261125)
    pairs = {(_random_id(rng), _random_id(rng)) for _ in range(10_000)}
    # ids that differ only where the slug loses information
    pairs |= {("DS_1", "a.tif"), ("ds-1", "a.tif"), ("DS 1", "A.TIF"), ("x" * 200, "y" * 199)}
    names = {}
    for dataset_id, image_id in pairs:
        name = job_name(dataset_id, image_id)
        assert len(name) <= 63 and DNS_1123_LABEL.match(name), (dataset_id, image_id, name)
        assert names.setdefault(name, (dataset_id, image_id)) == (dataset_id, image_id)
    assert len(names) == len(pairs)


def test_job_name_is_deterministic_and_readable() -> None:
    assert job_name("run-7", "A01") == job_name("run-7", "A01")
    assert job_name("run-7", "A01").startswith("ovn-run-7-a01-")
    assert job_name("", "") != job_name("", "-")  # even ids with no slug at all


@pytest.mark.parametrize(
    "value", ["", "ok", "a" * 63, "a" * 64, "-lead", "trail.", "sp ace", "µm", "x/y@1.2"]
)
def test_label_values_are_valid_and_keep_valid_input(value: str) -> None:
    sanitised = label_value(value)
    assert len(sanitised) <= 63 and LABEL_VALUE.match(sanitised)
    if len(value) <= 63 and LABEL_VALUE.match(value):
        assert sanitised == value


def _template(**changes: object) -> JobTemplate:
    base = JobTemplate(
        image="registry.example/overnight/segmentation:0.1.0",
        namespace="overnight",
        resources=Resources(cpu_request="500m", memory_request="1Gi"),
        service_account="overnight-job",
        config_map="overnight-config",
        secret_env=(SecretEnv(name="OVERNIGHT_REDIS_PASSWORD", secret="s", key="redis-password"),),
        env={"OVERNIGHT_REDIS_URL": "redis://:$(OVERNIGHT_REDIS_PASSWORD)@redis:6379/0"},
        labels={"app.kubernetes.io/instance": "lab"},
        volumes=({"name": "nas", "persistentVolumeClaim": {"claimName": "nas", "readOnly": True}},),
        volume_mounts=({"name": "nas", "mountPath": "/data/nas", "readOnly": True},),
    )
    return base.model_copy(update=changes)


LONG_ID = "Dataset – Überlange Bezeichnung 2026/11/25 " * 4


@pytest.mark.parametrize("gpu", [0, 1])
def test_image_job_validates_strictly_and_carries_the_contract(strict_validate, gpu) -> None:
    spec = _template(
        gpu=gpu,
        node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"} if gpu else {},
        tolerations=(Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"),),
    )
    versions = {"segmentation": "unet2d-cells@2026.11.0+" + "x" * 80, "pnp": "log-1.0"}
    job = build_job(spec, LONG_ID, "raw/plate 1/A01.ome.tif", "A01", "cytometry", versions)
    strict_validate(job)

    meta, pod = job["metadata"], job["spec"]["template"]["spec"]
    assert meta["annotations"]["overnight.io/dataset-id"] == LONG_ID
    assert all(len(v) <= 63 and LABEL_VALUE.match(v) for v in meta["labels"].values())
    assert meta["labels"]["app.kubernetes.io/instance"] == "lab"
    container = pod["containers"][0]
    assert container["command"] + container["args"] == [
        "overnight", "worker", "run-image",
        "--dataset-id", LONG_ID, "--image-key", "raw/plate 1/A01.ome.tif",
    ]  # fmt: skip
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "overnight-job"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"]
    assert ("nvidia.com/gpu" in container["resources"]["limits"]) == bool(gpu)
    env_names = [e["name"] for e in container["env"]]
    assert env_names.index("OVERNIGHT_REDIS_PASSWORD") < env_names.index("OVERNIGHT_REDIS_URL")

    rules = job["spec"]["podFailurePolicy"]["rules"]
    fail_codes = [r["onExitCodes"]["values"] for r in rules if r["action"] == "FailJob"]
    assert fail_codes == [[BAD_IMAGE_EXIT_CODE]]
    ignored = [r["onPodConditions"][0]["type"] for r in rules if r["action"] == "Ignore"]
    assert ignored == ["DisruptionTarget"]
    for key in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        assert isinstance(job["spec"][key], int)


def test_drain_job_runs_k_images_per_pod(strict_validate) -> None:
    job = build_drain_job(_template(), "ds1", "batch-0007", "cytometry", {}, max_images=25)
    strict_validate(job)
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["worker", "drain", "--max-images", "25"]
    assert (
        job["metadata"]["name"]
        != build_drain_job(_template(), "ds1", "b8", "c", {}, 25)["metadata"]["name"]
    )
    with pytest.raises(ValueError, match="max_images"):
        build_drain_job(_template(), "ds1", "b", "c", {}, max_images=0)


def test_template_is_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        _template().gpu = 2  # type: ignore[misc]


def test_settings_parse_json_env_into_the_template(monkeypatch) -> None:
    monkeypatch.setenv("OVERNIGHT_JOB_IMAGE", "img:1")
    monkeypatch.setenv("OVERNIGHT_JOB_GPU", "1")
    tolerations = '[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]'
    monkeypatch.setenv("OVERNIGHT_JOB_TOLERATIONS", tolerations)
    monkeypatch.setenv("OVERNIGHT_JOB_SECRET_ENV", '[{"name": "A", "secret": "s", "key": "k"}]')
    monkeypatch.setenv("OVERNIGHT_JOB_NODE_SELECTOR", '{"pool": "gpu"}')
    monkeypatch.setenv("OVERNIGHT_JOB_CPU_LIMIT", "")
    template = DispatchSettings().job_template()
    assert template.image == "img:1" and template.gpu == 1
    assert template.tolerations[0].to_k8s() == {
        "key": "gpu", "operator": "Exists", "effect": "NoSchedule"
    }  # fmt: skip
    assert template.secret_env == (SecretEnv(name="A", secret="s", key="k"),)
    assert template.node_selector == {"pool": "gpu"}
    assert template.resources.cpu_limit is None


def _render(args: list[str], env: dict[str, str]) -> dict:
    result = CliRunner().invoke(cli, ["dispatch", "render-job", *args], env=env)
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(result.output)
    assert isinstance(doc, dict)
    return doc


def test_render_job_cli_prints_a_valid_job(strict_validate) -> None:
    env = {
        "OVERNIGHT_JOB_IMAGE": "overnight/segmentation:9.9",
        "OVERNIGHT_JOB_NAMESPACE": "lab",
        "OVERNIGHT_JOB_GPU": "1",
        "OVERNIGHT_JOB_CONFIG_MAP": "overnight-config",
        "OVERNIGHT_IMAGES_PER_POD": "1",
    }
    job = _render(
        ["--dataset", "ds-42", "--image", "raw/A01.ome.tif", "--model-version", "seg=1.2"], env
    )
    strict_validate(job)
    assert job["metadata"]["namespace"] == "lab"
    assert job["metadata"]["labels"]["overnight.io/image-id"] == "A01"
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "overnight/segmentation:9.9"

    drain = _render(["--dataset", "ds-42", "--image", "batch-1", "--images-per-pod", "8"], env)
    strict_validate(drain)
    assert drain["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "8"


def test_render_job_rejects_bad_settings_and_model_versions() -> None:
    runner = CliRunner()
    bad = runner.invoke(
        cli, ["dispatch", "render-job", "--dataset", "d", "--image", "i"],
        env={"OVERNIGHT_JOB_GPU": "-1"},
    )  # fmt: skip
    assert bad.exit_code != 0 and "OVERNIGHT_JOB_GPU" in bad.output
    version = runner.invoke(
        cli, ["dispatch", "render-job", "--dataset", "d", "--image", "i", "--model-version", "x"]
    )
    assert version.exit_code != 0 and "NAME=VERSION" in version.output


def test_dispatch_run_says_clearly_when_the_dispatcher_is_missing(monkeypatch) -> None:
    import overnight.cli.dispatch as dispatch_cli

    monkeypatch.setattr(dispatch_cli, "DISPATCHER_MODULE", "overnight_dispatch_absent.dispatcher")
    result = CliRunner().invoke(cli, ["dispatch", "run"])
    assert result.exit_code == 1
    assert "overnight_dispatch_absent.dispatcher" in result.output
    assert "not installed" in result.output
