"""The Kubernetes ``batch/v1`` Job that analyses one image (or drains K images), as plain dicts.

Pure functions, no ``kubernetes`` import: the dispatcher hands the dict to the API client,
``overnight dispatch render-job`` prints it as YAML and the tests validate it against the
Kubernetes OpenAPI schemas. The Helm chart's ConfigMap carries the :class:`JobTemplate`
parameters to the dispatcher as ``OVERNIGHT_JOB_*`` variables (see
:mod:`overnight.dispatch.settings`).

Failure handling, in the Job and not in the dispatcher:

* exit code 3 (:data:`BAD_IMAGE_EXIT_CODE`, an :class:`~overnight.errors.InvalidImageError`)
  fails the Job at once — the same bytes fail the same way, retrying wastes a node;
* a pod killed by a disruption (preemption, node drain, eviction: the ``DisruptionTarget``
  condition) is ignored, i.e. retried without counting against ``backoffLimit``;
* any other non-zero exit is retried up to ``backoffLimit`` times.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Exit code of ``overnight worker run-image`` for an image that can never be analysed.
BAD_IMAGE_EXIT_CODE = 3
#: Name of the one container in every image Job (used by the pod failure policy).
CONTAINER_NAME = "worker"
#: Prefix of label and annotation keys that overnight owns.
LABEL_DOMAIN = "overnight.io"
#: Kubernetes limit for names that also appear as label values (Job names do: ``job-name``).
MAX_NAME_CHARS = 63
#: Hex digits of the SHA-256 suffix that keeps truncated names distinct (48 bits).
HASH_CHARS = 12

JsonDict = dict[str, Any]

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NOT_DNS = re.compile(r"[^a-z0-9]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")


class Resources(BaseModel):
    """CPU and memory of one worker container, in Kubernetes quantities ("500m", "2Gi")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu_request: str = "1"
    memory_request: str = "2Gi"
    cpu_limit: str | None = "2"
    memory_limit: str | None = "4Gi"


class Toleration(BaseModel):
    """One pod toleration, e.g. ``nvidia.com/gpu=present:NoSchedule`` on GPU node pools."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(None, alias="tolerationSeconds")

    def to_k8s(self) -> JsonDict:
        """Return the toleration as the Kubernetes API spells it (camelCase, no nulls)."""
        return self.model_dump(by_alias=True, exclude_none=True)


class SecretEnv(BaseModel):
    """An environment variable read from one key of a Secret (``valueFrom.secretKeyRef``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    secret: str
    key: str


class JobTemplate(BaseModel):
    """Everything about a per-image Job that does not depend on the image.

    Attributes
    ----------
    image : str
        Container image that has the ``overnight`` command (the segmentation image).
    namespace : str
        Namespace the Jobs are created in (the dispatcher's Role is limited to it).
    resources : Resources
        Requests and limits of the worker container.
    gpu : int
        GPU count in the limits; 0 for CPU-only pods.
    gpu_resource : str
        Extended resource name of the GPUs (``nvidia.com/gpu``, ``amd.com/gpu``).
    backoff_limit : int
        Retries of a failed pod (disruptions and exit code 3 excepted, see the module doc).
    active_deadline_s : int
        Wall-clock limit of the whole Job, all retries included, in seconds.
    ttl_s : int
        Seconds a finished Job (and its pods' logs) is kept before Kubernetes deletes it.
    service_account : str
        Service account of the pods; its token is never mounted (they need no API access).
    config_map : str
        ConfigMap whose keys become the environment (``OVERNIGHT_*`` settings).
    secret_name : str or None
        Secret whose keys become environment variables as they are (``envFrom``).
    secret_env : tuple of SecretEnv
        Variables taken from single Secret keys (API token, S3 keys, Redis password).
    env : dict of str to str
        Plain variables set after ``secret_env``, so they may use ``$(NAME)`` references
        (``redis://:$(OVERNIGHT_REDIS_PASSWORD)@redis:6379/0``).
    node_selector, tolerations
        Scheduling: e.g. a GPU node pool and its taint.
    labels : dict of str to str
        Extra labels on Jobs and pods (the Helm release, to select them).
    volumes, volume_mounts : tuple of dict
        Kubernetes ``Volume`` / ``VolumeMount`` objects (the NAS); an ``emptyDir`` on
        ``/tmp`` is always added because the root filesystem is read-only.
    image_pull_policy : str
        ``IfNotPresent`` (default), ``Always`` or ``Never``.
    run_as_user : int
        Non-root UID the container runs as (the Dockerfiles use 10001).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    image: str
    namespace: str = "default"
    resources: Resources = Resources()
    gpu: int = Field(0, ge=0)
    gpu_resource: str = "nvidia.com/gpu"
    backoff_limit: int = Field(3, ge=0)
    active_deadline_s: int = Field(3600, gt=0)
    ttl_s: int = Field(3600, ge=0)
    service_account: str = "default"
    config_map: str | None = None
    secret_name: str | None = None
    secret_env: tuple[SecretEnv, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)
    volumes: tuple[JsonDict, ...] = ()
    volume_mounts: tuple[JsonDict, ...] = ()
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"
    run_as_user: int = Field(10001, gt=0)


def _digest(*parts: str) -> str:
    joined = "\x00".join(parts).encode("utf-8", errors="surrogatepass")
    return hashlib.sha256(joined).hexdigest()[:HASH_CHARS]


def _dns_slug(text: str, max_chars: int) -> str:
    return _NOT_DNS.sub("-", text.lower())[:max_chars].strip("-")


def job_name(dataset_id: str, image_id: str, prefix: str = "ovn") -> str:
    """Return a deterministic DNS-1123 Job name for one image of one dataset.

    ``{prefix}-{dataset slug}-{image slug}-{hash}``: lowercase, at most 63 characters, the
    slugs are for people reading ``kubectl get jobs``, and the 12-hex-digit SHA-256 of both
    full ids keeps ids distinct that only differ after truncation or in characters the slug
    drops (``A_1`` and ``a-1``).

    Examples
    --------
    >>> job_name("DS 2026-11-25", "plate1/well_A01.tif")
    'ovn-ds-2026-11-25-plate1-well-a01-tif-bf03be61cf18'
    """
    hash_part = _digest(dataset_id, image_id)
    budget = MAX_NAME_CHARS - len(prefix) - len(hash_part) - 3  # three "-" separators
    dataset_part = _dns_slug(dataset_id, min(16, budget // 2))
    image_part = _dns_slug(image_id, budget - len(dataset_part))
    parts = [p for p in (prefix, dataset_part, image_part, hash_part) if p]
    return "-".join(parts)


def label_value(value: str) -> str:
    """Return ``value`` if it is a valid label value, else a sanitised prefix plus a hash.

    Label values are at most 63 characters of ``[A-Za-z0-9_.-]`` starting and ending
    alphanumerically; the full value always goes into an annotation beside the label.
    """
    if len(value) <= MAX_NAME_CHARS and _LABEL_VALUE.match(value):
        return value
    hash_part = _digest(value)
    head = _NOT_LABEL.sub("-", value)[: MAX_NAME_CHARS - HASH_CHARS - 1].strip("-_.")
    return f"{head}-{hash_part}" if head else hash_part


def _label_key_name(name: str) -> str:
    """Return the name part of a label key (after ``prefix/``), valid like a label value."""
    return label_value(name) or "unnamed"


def _identity(
    dataset_id: str,
    pipeline: str,
    model_versions: Mapping[str, str],
    image_id: str | None,
    image_key: str | None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Labels (sanitised, for selectors) and annotations (full values) of a Job."""
    labels = {
        "app.kubernetes.io/name": "overnight",
        "app.kubernetes.io/component": "image-job",
        "app.kubernetes.io/managed-by": "overnight-dispatcher",
        f"{LABEL_DOMAIN}/dataset-id": label_value(dataset_id),
        f"{LABEL_DOMAIN}/pipeline": label_value(pipeline),
    }
    annotations = {
        f"{LABEL_DOMAIN}/dataset-id": dataset_id,
        f"{LABEL_DOMAIN}/pipeline": pipeline,
        f"{LABEL_DOMAIN}/model-versions": json.dumps(dict(model_versions), sort_keys=True),
    }
    if image_id is not None:
        labels[f"{LABEL_DOMAIN}/image-id"] = label_value(image_id)
        annotations[f"{LABEL_DOMAIN}/image-id"] = image_id
    if image_key is not None:
        annotations[f"{LABEL_DOMAIN}/image-key"] = image_key
    for model, version in sorted(model_versions.items()):
        labels[f"model.{LABEL_DOMAIN}/{_label_key_name(model)}"] = label_value(version)
    return labels, annotations


def _container(spec: JobTemplate, args: list[str]) -> JsonDict:
    limits: dict[str, str] = {}
    if spec.resources.cpu_limit:
        limits["cpu"] = spec.resources.cpu_limit
    if spec.resources.memory_limit:
        limits["memory"] = spec.resources.memory_limit
    if spec.gpu:
        limits[spec.gpu_resource] = str(spec.gpu)
    resources: JsonDict = {
        "requests": {"cpu": spec.resources.cpu_request, "memory": spec.resources.memory_request}
    }
    if limits:
        resources["limits"] = limits
    env: list[JsonDict] = [
        {"name": s.name, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": s.key}}}
        for s in spec.secret_env
    ]
    env += [{"name": name, "value": value} for name, value in spec.env.items()]
    env.append({"name": "HOME", "value": "/tmp"})
    env_from: list[JsonDict] = []
    if spec.config_map:
        env_from.append({"configMapRef": {"name": spec.config_map}})
    if spec.secret_name:
        env_from.append({"secretRef": {"name": spec.secret_name}})
    container: JsonDict = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["overnight"],
        "args": args,
        "env": env,
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *spec.volume_mounts],
    }
    if env_from:
        container["envFrom"] = env_from
    return container


def _job(
    spec: JobTemplate,
    name: str,
    args: list[str],
    labels: dict[str, str],
    annotations: dict[str, str],
) -> JsonDict:
    all_labels = {**spec.labels, **labels}
    pod_spec: JsonDict = {
        "restartPolicy": "Never",
        "serviceAccountName": spec.service_account,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": spec.run_as_user,
            "runAsGroup": spec.run_as_user,
            "fsGroup": spec.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(spec, args)],
        "volumes": [{"name": "tmp", "emptyDir": {}}, *spec.volumes],
    }
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod_spec["tolerations"] = [t.to_k8s() for t in spec.tolerations]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": spec.namespace,
            "labels": all_labels,
            "annotations": dict(annotations),
        },
        "spec": {
            "backoffLimit": spec.backoff_limit,
            "activeDeadlineSeconds": spec.active_deadline_s,
            "ttlSecondsAfterFinished": spec.ttl_s,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": CONTAINER_NAME,
                            "operator": "In",
                            "values": [BAD_IMAGE_EXIT_CODE],
                        },
                    },
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    },
                ]
            },
            "template": {
                "metadata": {"labels": dict(all_labels), "annotations": dict(annotations)},
                "spec": pod_spec,
            },
        },
    }


def build_job(
    spec: JobTemplate,
    dataset_id: str,
    image_key: str,
    image_id: str,
    pipeline: str,
    model_versions: Mapping[str, str],
) -> JsonDict:
    """Build the Job that runs ``overnight worker run-image`` on one image.

    Parameters
    ----------
    spec : JobTemplate
        Image, resources, scheduling and failure policy shared by all images.
    dataset_id : str
        Dataset the image belongs to (label ``overnight.io/dataset-id``).
    image_key : str
        Storage key of the image, passed to ``--image-key``.
    image_id : str
        Image id (file name without ``.tif``); with ``dataset_id`` it names the Job.
    pipeline : str
        Pipeline name, e.g. ``cytometry`` (label and annotation only).
    model_versions : mapping of str to str
        Model name -> version used, recorded as labels and a JSON annotation.

    Returns
    -------
    dict
        A ``batch/v1`` Job manifest.
    """
    labels, annotations = _identity(dataset_id, pipeline, model_versions, image_id, image_key)
    args = ["worker", "run-image", "--dataset-id", dataset_id, "--image-key", image_key]
    return _job(spec, job_name(dataset_id, image_id), args, labels, annotations)


def build_drain_job(
    spec: JobTemplate,
    dataset_id: str,
    batch_id: str,
    pipeline: str,
    model_versions: Mapping[str, str],
    max_images: int,
) -> JsonDict:
    """Build the ``imagesPerPod: K`` variant: one pod runs ``overnight worker drain``.

    ``overnight worker drain --max-images K`` takes up to K images from the queue, paying
    the pod start-up and model loading once for all of them. ``batch_id`` (e.g. a counter
    per dataset) names the Job. The exit-code-3 rule still applies: a drain worker must
    exit 3 only when every image it took was bad, else record the bad ones and exit 0.
    """
    if max_images < 1:
        raise ValueError(f"max_images must be at least 1, got {max_images}")
    labels, annotations = _identity(dataset_id, pipeline, model_versions, None, None)
    labels[f"{LABEL_DOMAIN}/batch-id"] = label_value(batch_id)
    annotations[f"{LABEL_DOMAIN}/batch-id"] = batch_id
    args = ["worker", "drain", "--max-images", str(max_images)]
    return _job(spec, job_name(dataset_id, batch_id, prefix="ovd"), args, labels, annotations)
