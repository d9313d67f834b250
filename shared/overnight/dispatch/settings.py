"""Settings of the Kubernetes dispatcher and of the Jobs it creates (``OVERNIGHT_JOB_*``).

The Helm chart's ConfigMap sets these variables on the dispatcher Deployment; lists and maps
(``OVERNIGHT_JOB_TOLERATIONS``, ``OVERNIGHT_JOB_SECRET_ENV``, ``OVERNIGHT_JOB_VOLUMES`` ...)
are JSON, which pydantic-settings parses. :meth:`DispatchSettings.job_template` turns them
into the :class:`~overnight.dispatch.jobspec.JobTemplate` that
:func:`~overnight.dispatch.jobspec.build_job` uses.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from overnight.config import CommonSettings
from overnight.dispatch.jobspec import JobTemplate, JsonDict, Resources, SecretEnv, Toleration

DEFAULT_JOB_IMAGE = "overnight/segmentation:0.1.0"


class DispatchSettings(CommonSettings):
    """What ``overnight dispatch`` needs: queue limits and the per-image Job template."""

    # An empty OVERNIGHT_JOB_*_LIMIT (as the chart renders "no limit") means None here,
    # so empty values are not ignored as they are for the other services.
    model_config = {**CommonSettings.model_config, "env_ignore_empty": False}

    config_section: ClassVar[str | None] = "dispatch"

    max_active_jobs: int = Field(
        8, ge=1, description="Most Jobs alive at once (pending + running); the rest wait."
    )
    images_per_pod: int = Field(
        1, ge=1, description="1: one Job per image; K > 1: Jobs that drain K images each."
    )
    job_image: str = Field(DEFAULT_JOB_IMAGE, description="Container image of the Jobs.")
    job_namespace: str = Field("default", description="Namespace the Jobs are created in.")
    job_image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"
    job_service_account: str = Field("default", description="Service account of Job pods.")
    job_config_map: str | None = Field(None, description="ConfigMap loaded as env (envFrom).")
    job_secret_name: str | None = Field(None, description="Secret loaded as env (envFrom).")
    job_secret_env: tuple[SecretEnv, ...] = Field(
        (), description='JSON list of {"name", "secret", "key"}: single Secret keys as env.'
    )
    job_env: dict[str, str] = Field(
        default_factory=dict, description="JSON map of plain env, may use $(NAME) references."
    )
    job_cpu_request: str = "1"
    job_memory_request: str = "2Gi"
    job_cpu_limit: str | None = "2"
    job_memory_limit: str | None = "4Gi"
    job_gpu: int = Field(0, ge=0, description="GPUs per Job pod (0: CPU only).")
    job_gpu_resource: str = Field("nvidia.com/gpu", description="Extended resource of the GPUs.")
    job_backoff_limit: int = Field(3, ge=0, description="Retries of a failed pod.")
    job_active_deadline_s: int = Field(3600, gt=0, description="Wall-clock limit of a Job.")
    job_ttl_s: int = Field(3600, ge=0, description="Seconds a finished Job is kept.")
    job_node_selector: dict[str, str] = Field(default_factory=dict, description="JSON map.")
    job_tolerations: tuple[Toleration, ...] = Field((), description="JSON list of tolerations.")
    job_labels: dict[str, str] = Field(default_factory=dict, description="JSON map of labels.")
    job_volumes: tuple[JsonDict, ...] = Field((), description="JSON list of k8s Volumes.")
    job_volume_mounts: tuple[JsonDict, ...] = Field((), description="JSON list of mounts.")
    job_run_as_user: int = Field(10001, gt=0, description="Non-root UID of Job pods.")

    def job_template(self) -> JobTemplate:
        """Return the per-image Job parameters these settings describe."""
        return JobTemplate(
            image=self.job_image,
            namespace=self.job_namespace,
            resources=Resources(
                cpu_request=self.job_cpu_request,
                memory_request=self.job_memory_request,
                cpu_limit=self.job_cpu_limit or None,
                memory_limit=self.job_memory_limit or None,
            ),
            gpu=self.job_gpu,
            gpu_resource=self.job_gpu_resource,
            backoff_limit=self.job_backoff_limit,
            active_deadline_s=self.job_active_deadline_s,
            ttl_s=self.job_ttl_s,
            service_account=self.job_service_account,
            config_map=self.job_config_map or None,
            secret_name=self.job_secret_name or None,
            secret_env=self.job_secret_env,
            env=self.job_env,
            node_selector=self.job_node_selector,
            tolerations=self.job_tolerations,
            labels=self.job_labels,
            volumes=self.job_volumes,
            volume_mounts=self.job_volume_mounts,
            image_pull_policy=self.job_image_pull_policy,
            run_as_user=self.job_run_as_user,
        )
