"""A thin wrapper over the official ``kubernetes`` client: the Job calls the dispatcher makes.

One namespace, plain dicts in and out (the raw JSON, not the client's model classes: the
dispatcher builds Jobs as dicts with :mod:`overnight.dispatch.jobspec` and reads only a few
fields back). Every call is retried with a growing delay on 429 (honouring ``Retry-After``),
5xx and dropped connections; a create that answers 409 means the Job exists already.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.watch.watch import iter_resp_lines

from overnight.errors import ConfigError, TransientError

logger = logging.getLogger(__name__)

T = TypeVar("T")
JsonDict = dict[str, Any]

#: Status codes worth retrying: throttled, or the API server (or its etcd) in trouble.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Connection-level failures worth retrying (API server restarting, load balancer hiccup).
RETRY_ERRORS: tuple[type[BaseException], ...] = (urllib3.exceptions.HTTPError, OSError)


class WatchExpired(Exception):
    """The watch's resourceVersion is older than the API server keeps (410 Gone): re-list."""


@dataclass(frozen=True)
class Backoff:
    """Retry policy: ``tries`` attempts, delays ``first_s``, ×2 each time, at most ``max_s``."""

    tries: int = 8
    first_s: float = 0.2
    max_s: float = 30.0

    def delay_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        delay = min(self.max_s, self.first_s * 2**attempt)
        return max(delay, min(self.max_s, retry_after_s or 0.0))


@dataclass(frozen=True)
class JobList:
    """Jobs from one list call and the resourceVersion to watch from."""

    items: list[JsonDict]
    resource_version: str


def load_batch_api() -> client.BatchV1Api:
    """The batch/v1 API from the pod's service account, else from ``KUBECONFIG``/``~/.kube``."""
    try:
        config.load_incluster_config()
    except ConfigException:
        try:
            config.load_kube_config()
        except ConfigException as err:
            raise ConfigError(
                f"no Kubernetes API server: not in a pod, and no usable kubeconfig ({err})"
            ) from err
    return client.BatchV1Api()


class KubeJobs:
    """Create, get, list, watch and delete Jobs in ``namespace``, with retries (module doc)."""

    def __init__(
        self,
        api: client.BatchV1Api,
        namespace: str,
        backoff: Backoff = Backoff(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.backoff = backoff
        self.sleep = sleep
        self._streams: set[Any] = set()
        self._streams_lock = threading.Lock()

    def create(self, body: JsonDict) -> bool:
        """Create the Job ``body``; False when a Job of that name exists already (409)."""
        try:
            # The client serialises a dict body as it is (its stubs only name V1Job).
            self._call(
                "create",
                lambda: self.api.create_namespaced_job(self.namespace, body),  # type: ignore[arg-type]
            )
        except ApiException as err:
            if err.status == 409:
                return False
            raise
        return True

    def get(self, name: str) -> JsonDict | None:
        """The Job ``name``, or None when there is none."""
        try:
            return self._json(
                "get",
                lambda: self.api.read_namespaced_job(name, self.namespace, _preload_content=False),
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def list(self, label_selector: str) -> JobList:
        """Every Job matching ``label_selector``, with the list's resourceVersion."""
        data = self._json(
            "list",
            lambda: self.api.list_namespaced_job(
                self.namespace, label_selector=label_selector, _preload_content=False
            ),
        )
        return JobList(
            items=list(data.get("items") or []),
            resource_version=str(data["metadata"]["resourceVersion"]),
        )

    def delete(self, name: str) -> bool:
        """Delete the Job ``name`` and (in the background) its pods; False if it was gone."""
        try:
            self._call(
                "delete",
                lambda: self.api.delete_namespaced_job(
                    name, self.namespace, propagation_policy="Background", _preload_content=False
                ),
            )
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    def watch(
        self, label_selector: str, resource_version: str, timeout_s: int
    ) -> Iterator[tuple[str, JsonDict]]:
        """Job events (type, object) after ``resource_version``, until the stream ends.

        The server ends the stream after ``timeout_s``; a dropped connection raises one of
        :data:`RETRY_ERRORS` (resume from the last resourceVersion seen) and an expired
        resourceVersion raises :class:`WatchExpired` (re-list).
        """
        # With _preload_content=False the client returns the raw urllib3 response.
        response: Any = self._call(
            "watch",
            lambda: self.api.list_namespaced_job(
                self.namespace,
                label_selector=label_selector,
                resource_version=resource_version,
                watch=True,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout_s,
                _preload_content=False,
                _request_timeout=(10, timeout_s + 30),
            ),
        )
        with self._streams_lock:
            self._streams.add(response)
        try:
            for line in iter_resp_lines(response):
                if not line:
                    continue
                event = json.loads(line)
                kind, obj = str(event["type"]), event["object"]
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpired(obj.get("message", "resourceVersion too old"))
                    raise TransientError(f"watch error from the API server: {obj}")
                yield kind, obj
        finally:
            with self._streams_lock:
                self._streams.discard(response)
            response.release_conn()

    def interrupt_watches(self) -> None:
        """Unblock every open watch stream (they raise in their reading thread); for a stop."""
        with self._streams_lock:
            streams = list(self._streams)
        for response in streams:
            try:
                response.shutdown()
            except (OSError, ValueError, RuntimeError) as err:  # it ended meanwhile: nothing to do
                logger.debug("watch stream already closed: %s", err)

    def _json(self, what: str, call: Callable[[], Any]) -> JsonDict:
        response = self._call(what, call)
        data: JsonDict = json.loads(response.data)
        return data

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """``call()``, retried on 429, 5xx and connection errors (see :class:`Backoff`)."""
        for attempt in range(self.backoff.tries):
            last = attempt == self.backoff.tries - 1
            try:
                return call()
            except ApiException as err:
                if err.status not in RETRY_STATUSES or last:
                    raise
                delay = self.backoff.delay_s(attempt, _retry_after_s(err))
                logger.warning("%s Job: HTTP %s, retrying in %.1f s", what, err.status, delay)
            except RETRY_ERRORS as err:
                if last:
                    raise TransientError(f"{what} Job: API server unreachable: {err}") from err
                delay = self.backoff.delay_s(attempt)
                logger.warning("%s Job: %s, retrying in %.1f s", what, err, delay)
            self.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _retry_after_s(err: ApiException) -> float | None:
    value = (err.headers or {}).get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
