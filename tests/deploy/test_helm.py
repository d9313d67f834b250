"""The Helm chart: lint, strict schema validation of every rendered object, semantic checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from overnight.dispatch import DispatchSettings, build_job

CHART = Path(__file__).resolve().parents[2] / "helm" / "overnight"
SCENARIOS = sorted(
    p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml")
)
RELEASE, NAMESPACE = "lab", "imaging"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "CronJob"}
SECRETS = {
    "auth": {"apiToken": "t0ken"},
    "redis": {"auth": {"password": "redispass"}},
    "minio": {"auth": {"rootPassword": "minio-pass"}},
}


def _values(scenario: str) -> dict[str, Any]:
    values = yaml.safe_load((CHART / "ci" / f"{scenario}-values.yaml").read_text())
    assert isinstance(values, dict)
    return values


def render(values: dict[str, Any], name: str = RELEASE) -> list[dict[str, Any]]:
    """Every object the chart renders for ``values`` (NOTES.txt left out)."""
    with helm_python.Chart.load(str(CHART)) as chart:
        files = chart.render(values, name=name, namespace=NAMESPACE)
    docs = []
    for path, text in sorted(files.items()):
        if path.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def notes(values: dict[str, Any]) -> str:
    with helm_python.Chart.load(str(CHART)) as chart:
        files = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    return next(text for path, text in files.items() if path.endswith("NOTES.txt"))


@pytest.fixture(scope="module", params=SCENARIOS)
def scenario(request) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(_values(request.param))


def _of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def _containers(docs: list[dict[str, Any]]) -> Iterator[tuple[dict, dict, dict]]:
    for doc in docs:
        if doc["kind"] in WORKLOAD_KINDS:
            pod = _pod_spec(doc)
            for container in pod.get("initContainers", []) + pod["containers"]:
                yield doc, pod, container


def test_scenarios_exist() -> None:
    assert {"minimal", "external-storage", "gpu"} <= set(SCENARIOS)


@pytest.mark.parametrize("name", SCENARIOS)
def test_lint_is_clean(name: str) -> None:
    report = helm_python.lint(str(CHART), _values(name), strict=True)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


def test_every_object_validates_strictly(scenario, strict_validate) -> None:
    _, docs = scenario
    assert docs
    for doc in docs:
        strict_validate(doc)
        assert doc["metadata"].get("namespace", NAMESPACE) == NAMESPACE
        assert len(doc["metadata"]["name"]) <= 63


def test_dispatcher_role_is_least_privilege(scenario) -> None:
    name, docs = scenario
    assert not _of_kind(docs, "ClusterRole") and not _of_kind(docs, "ClusterRoleBinding")
    roles = _of_kind(docs, "Role")
    if _values(name).get("settings", {}).get("backend", "kubernetes") != "kubernetes":
        assert not roles
        return
    (role,) = roles
    assert role["metadata"]["namespace"] == NAMESPACE
    allowed = {
        ("batch", "jobs"): {"get", "list", "watch", "create", "delete"},
        ("", "pods"): {"get", "list", "watch"},
        ("", "pods/log"): {"get", "list", "watch"},
    }
    granted = {
        (g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    }
    assert granted == set(allowed)
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert set(rule["verbs"]) <= allowed[(group, resource)], rule
    (binding,) = _of_kind(docs, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]
    }  # fmt: skip
    dispatcher = next(
        d for d in _of_kind(docs, "Deployment") if "dispatcher" in d["metadata"]["name"]
    )
    assert binding["subjects"][0]["name"] == _pod_spec(dispatcher)["serviceAccountName"]


def test_long_running_containers_have_probes_and_resources(scenario) -> None:
    _, docs = scenario
    for doc, _, container in _containers(docs):
        resources = container.get("resources", {})
        assert resources.get("requests") and resources.get("limits"), (doc["kind"], container)
        if doc["kind"] in {"Deployment", "StatefulSet"}:
            assert "readinessProbe" in container and "livenessProbe" in container, container["name"]


def test_no_container_runs_as_root(scenario) -> None:
    _, docs = scenario
    for doc, pod, container in _containers(docs):
        merged = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
        assert merged.get("runAsNonRoot") is True, (doc["metadata"]["name"], container["name"])
        assert merged.get("runAsUser", 1) != 0
        assert container.get("securityContext", {}).get("allowPrivilegeEscalation") is False


def test_only_the_dispatcher_mounts_an_api_token(scenario) -> None:
    _, docs = scenario
    for doc in docs:
        if doc["kind"] in WORKLOAD_KINDS and "dispatcher" not in doc["metadata"]["name"]:
            assert _pod_spec(doc).get("automountServiceAccountToken") is False, doc["metadata"]


def test_minimal_has_built_in_redis_and_minio() -> None:
    docs = render(_values("minimal"))
    statefulsets = {d["metadata"]["name"] for d in _of_kind(docs, "StatefulSet")}
    assert statefulsets == {f"{RELEASE}-overnight-redis", f"{RELEASE}-overnight-minio"}
    redis = next(
        d for d in _of_kind(docs, "StatefulSet") if d["metadata"]["name"].endswith("redis")
    )
    args = _pod_spec(redis)["containers"][0]["args"]
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert args[args.index("--appendonly") + 1] == "yes"
    assert redis["spec"]["volumeClaimTemplates"]
    assert any("minio-bucket" in d["metadata"]["name"] for d in _of_kind(docs, "Job"))
    (config,) = _of_kind(docs, "ConfigMap")
    assert config["data"]["OVERNIGHT_S3_ENDPOINT"] == f"{RELEASE}-overnight-minio:9000"


def test_external_storage_has_no_redis_minio_or_inline_secret() -> None:
    docs = render(_values("external-storage"))
    assert not _of_kind(docs, "StatefulSet") and not _of_kind(docs, "Secret")
    names = " ".join(d["metadata"]["name"] for d in docs)
    assert "redis" not in names and "minio" not in names
    (config,) = _of_kind(docs, "ConfigMap")
    assert config["data"]["OVERNIGHT_S3_ENDPOINT"] == "storage.googleapis.com"
    assert config["data"]["OVERNIGHT_STORAGE_URL"] == "s3://lab-overnight/runs/"
    env = [e for _, _, c in _containers(docs) for e in c.get("env", [])]
    redis_url = next(e for e in env if e["name"] == "OVERNIGHT_REDIS_URL")
    assert redis_url["valueFrom"]["secretKeyRef"] == {"name": "overnight-redis", "key": "url"}
    assert _of_kind(docs, "CronJob")[0]["spec"]["schedule"] == "0 20 * * *"


def _job_from_configmap(docs: list[dict[str, Any]], monkeypatch) -> dict[str, Any]:
    """Build an image Job the way the dispatcher will: from the ConfigMap's OVERNIGHT_* env."""
    (config,) = _of_kind(docs, "ConfigMap")
    for key, value in config["data"].items():
        monkeypatch.setenv(key, value)
    template = DispatchSettings().job_template()
    return build_job(template, "ds-1", "raw/A01.tif", "A01", "cytometry", {"seg": "1"})


def test_configmap_feeds_the_dispatchers_job_template(monkeypatch, strict_validate) -> None:
    docs = render(_values("gpu"))
    job = _job_from_configmap(docs, monkeypatch)
    strict_validate(job)
    pod = job["spec"]["template"]["spec"]
    assert job["metadata"]["namespace"] == NAMESPACE
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"]["cloud.google.com/gke-accelerator"] == "nvidia-l4"
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["serviceAccountName"] == f"{RELEASE}-overnight-job"
    assert pod["containers"][0]["image"] == "registry.lab.example/overnight/segmentation:0.1.0-cuda"
    secret_env = {e["name"] for e in pod["containers"][0]["env"] if "valueFrom" in e}
    assert {
        "OVERNIGHT_API_TOKEN",
        "OVERNIGHT_REDIS_PASSWORD",
        "OVERNIGHT_S3_SECRET_KEY",
    } <= secret_env
    assert any(v.get("persistentVolumeClaim") for v in pod["volumes"])
    # the Job's service account exists and has no role
    (job_sa,) = [
        d for d in _of_kind(docs, "ServiceAccount") if d["metadata"]["name"].endswith("job")
    ]
    assert job_sa["automountServiceAccountToken"] is False


def test_gpu_limits_go_to_segmentation_workers_only(strict_validate) -> None:
    docs = render({**SECRETS, "settings": {"backend": "rq"}, "gpu": {"enabled": True}})
    workers = {d["metadata"]["name"]: d for d in _of_kind(docs, "Deployment")}
    seg = _pod_spec(workers[f"{RELEASE}-overnight-segmentation-worker"])
    pnp = _pod_spec(workers[f"{RELEASE}-overnight-pnp-worker"])
    assert seg["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert seg["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert "nvidia.com/gpu" not in pnp["containers"][0]["resources"]["limits"]
    assert f"{RELEASE}-overnight-dispatcher" not in workers
    for doc in docs:
        strict_validate(doc)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"ingest": {"replicas": -1}}, "/ingest/replicas"),
        ({"settings": {"backend": "celery"}}, "/settings/backend"),
        ({"dispatcher": {"maxActiveJobs": 0}}, "/dispatcher/maxActiveJobs"),
        ({"job": {"resources": {"requests": {"cpu": "lots"}}}}, "/job/resources/requests/cpu"),
        ({"ingest": {"replica": 2}}, "replica"),
    ],
)
def test_values_schema_rejects_bad_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=message):
        render({**SECRETS, **values})


def test_missing_secrets_stop_the_install() -> None:
    with pytest.raises(helm_python.HelmError, match=r"auth\.apiToken or auth\.existingSecret"):
        render({})
    values = {**SECRETS, "redis": {"enabled": False}}
    with pytest.raises(helm_python.HelmError, match="externalRedis.url"):
        render(values)


def test_nas_variants_and_long_release_names(strict_validate) -> None:
    for nas in ({"type": "hostPath", "hostPath": {"path": "/mnt/nas"}}, {"enabled": False}):
        docs = render({**SECRETS, "nas": nas}, name="a-very-long-release-name-for-the-imaging-core")
        for doc in docs:
            strict_validate(doc)
            assert len(doc["metadata"]["name"]) <= 63
        assert not _of_kind(docs, "PersistentVolumeClaim")


def test_gpu_notes_say_which_image_uses_the_gpu() -> None:
    """GPU honesty: the default worker image computes on CPU; a non-CUDA tag is flagged."""
    assert "GPUs:" not in notes(_values("minimal"))
    cpu_tag = notes({**SECRETS, "gpu": {"enabled": True}})
    assert "worker-gpu target" in cpu_tag and "WARNING: image tag" in cpu_tag
    cuda_tag = notes(_values("gpu"))
    assert "worker-gpu target" in cuda_tag and "WARNING" not in cuda_tag


def test_notes_tell_how_to_reach_the_api_and_qc_web() -> None:
    text = notes(_values("minimal"))
    assert "port-forward svc/lab-overnight-ingest 8000:8000" in text
    assert "port-forward svc/lab-overnight-qc-web 8080:8080" in text
    assert "Authorization: Bearer" in text
    ingress_text = notes(_values("external-storage"))
    assert "https://overnight.lab.example/" in ingress_text
    assert "http://qc.lab.example/" in ingress_text


def test_every_values_key_is_commented() -> None:
    """Each key has a comment just above it, or lies inside a commented key's value block."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    documented_at: list[int] = []  # indents of enclosing keys that carry a "# --" comment
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        documented_at = [i for i in documented_at if i < indent]
        above = lines[number - 1].strip() if number else ""
        if documented_at:
            continue  # part of a documented value, e.g. podSecurityContext's fields
        assert above.startswith("#"), f"values.yaml:{number + 1} '{stripped}' has no comment"
        if _comment_block(lines, number).startswith("# --"):
            documented_at.append(indent)


def _comment_block(lines: list[str], number: int) -> str:
    """The first line of the comment block right above line ``number``."""
    first = number
    while first > 0 and lines[first - 1].strip().startswith("#"):
        first -= 1
    return lines[first].strip()


def test_gpu_resource_name_reaches_workers_and_jobs(monkeypatch) -> None:
    gpu = {"enabled": True, "count": 2, "resourceName": "amd.com/gpu"}
    docs = render({**SECRETS, "gpu": gpu})
    job = _job_from_configmap(docs, monkeypatch)
    limits = job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["amd.com/gpu"] == "2" and "nvidia.com/gpu" not in limits
