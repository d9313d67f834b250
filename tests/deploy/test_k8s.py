"""k8s/: cluster-side manifests and the example values for a bare cluster, GKE and AKS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
CHART = ROOT / "helm" / "overnight"
VALUES_FILES = sorted(K8S.glob("*/values.yaml"))
MANIFESTS = sorted(
    p for p in K8S.rglob("*.yaml") if p.name not in {"values.yaml", "kustomization.yaml"}
)
#: Volume types Pod Security Admission "restricted" allows.
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_there_is_something_to_check() -> None:
    assert {p.parent.name for p in VALUES_FILES} == {"bare-cluster", "gke", "aks"}
    assert K8S / "namespace.yaml" in MANIFESTS


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(K8S)))
def test_manifests_validate_strictly(path: Path, strict_validate) -> None:
    for doc in _docs(path):
        strict_validate(doc)


def test_bare_cluster_kustomization_matches_its_values() -> None:
    folder = K8S / "bare-cluster"
    (kustomization,) = _docs(folder / "kustomization.yaml")
    (namespace,) = _docs(K8S / "namespace.yaml")
    assert kustomization["namespace"] == namespace["metadata"]["name"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for resource in kustomization["resources"]:
        assert (folder / resource).is_file(), resource
    generated = {}
    for secret in kustomization["secretGenerator"]:
        (env_file,) = secret["envs"]
        example = (folder / f"{env_file}.example").read_text().splitlines()
        generated[secret["name"]] = {
            line.split("=", 1)[0] for line in example if line and not line.startswith("#")
        }
    values = yaml.safe_load((folder / "values.yaml").read_text())
    chart_defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert generated[values["auth"]["existingSecret"]] == {chart_defaults["auth"]["apiTokenKey"]}
    assert generated[values["redis"]["auth"]["existingSecret"]] == {"redis-password"}
    assert generated[values["minio"]["auth"]["existingSecret"]] == {"root-user", "root-password"}
    claims = [d for d in _docs(folder / "nas.yaml") if d["kind"] == "PersistentVolumeClaim"]
    assert [c["metadata"]["name"] for c in claims] == [values["nas"]["pvc"]["existingClaim"]]


def _restricted_violations(doc: dict[str, Any]) -> list[str]:
    """What Pod Security Admission "restricted" would reject in a workload's pod."""
    if doc["kind"] not in {"Deployment", "StatefulSet", "Job", "CronJob"}:
        return []
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    pod = spec["template"]["spec"]
    problems = []
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {kinds}")
    pod_ctx = pod.get("securityContext", {})
    for container in pod["containers"]:
        ctx = {**pod_ctx, **container.get("securityContext", {})}
        if ctx.get("runAsNonRoot") is not True:
            problems.append(f"{container['name']}: runAsNonRoot")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{container['name']}: allowPrivilegeEscalation")
        if "ALL" not in ctx.get("capabilities", {}).get("drop", []):
            problems.append(f"{container['name']}: capabilities.drop ALL")
        if ctx.get("seccompProfile", {}).get("type") not in {"RuntimeDefault", "Localhost"}:
            problems.append(f"{container['name']}: seccompProfile")
    return problems


@pytest.mark.parametrize("path", VALUES_FILES, ids=lambda p: p.parent.name)
def test_example_values_render_valid_restricted_objects(path: Path, strict_validate) -> None:
    values = yaml.safe_load(path.read_text())
    with helm_python.Chart.load(str(CHART)) as chart:
        files = chart.render(values, name="overnight", namespace="overnight")
    docs = [d for p, t in files.items() if p.endswith(".yaml") for d in yaml.safe_load_all(t) if d]
    assert any(d["kind"] == "Deployment" for d in docs)
    for doc in docs:
        strict_validate(doc)
        assert not _restricted_violations(doc), (
            doc["metadata"]["name"],
            _restricted_violations(doc),
        )
