"""A stand-in for the Kubernetes API server: the batch/v1 Job endpoints, in memory, over HTTP.

No real API server can run on the machines these tests run on, so this small server on
127.0.0.1 answers the few calls the dispatcher makes, shaped as the real one answers them:

- ``POST   /apis/batch/v1/namespaces/{ns}/jobs`` — 201 with the stored Job (uid,
  resourceVersion, creationTimestamp added), 409 ``AlreadyExists`` for a taken name,
  422 ``Invalid`` for a name that is not DNS-1123;
- ``GET    .../jobs/{name}`` — 200 or 404 ``NotFound``;
- ``GET    .../jobs?labelSelector=k=v,...`` — a ``JobList`` with the list's resourceVersion;
- ``GET    .../jobs?watch=true&resourceVersion=RV`` — chunked JSON lines
  ``{"type": ADDED|MODIFIED|DELETED, "object": Job}`` after RV, until ``timeoutSeconds``;
  an RV older than the kept history answers an ``ERROR`` event with a 410 ``Expired``
  Status, as the real server does;
- ``DELETE .../jobs/{name}`` — 200 with a ``Success`` Status, 404 when absent.

Every error body is a ``v1.Status``. A test can inject faults (:meth:`inject`: e.g. 429 with
``Retry-After``, 500), drop every open watch stream mid-stream (:meth:`drop_watches`), forget
the event history (:meth:`compact`, so that resuming answers 410), and play the Job
controller: :meth:`start`, :meth:`complete`, :meth:`fail` (with a reason such as
``BackoffLimitExceeded``, ``DeadlineExceeded`` or ``PodFailurePolicy``).

Not modelled: other resources, authentication, field validation beyond the name (the tests
use ``kubernetes_validate`` for the bodies), pods, ``ttlSecondsAfterFinished``, bookmarks.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

JsonDict = dict[str, Any]

_PATH = re.compile(r"^/apis/batch/v1/namespaces/(?P<ns>[^/]+)/jobs(?:/(?P<name>[^/]+))?$")
_DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_REASONS = {
    404: "NotFound",
    409: "AlreadyExists",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


def status_object(code: int, message: str, **details: Any) -> JsonDict:
    """A ``v1.Status`` as the API server returns it with an error (or a delete)."""
    body: JsonDict = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "code": code,
    }
    if code >= 400:
        body["reason"] = _REASONS.get(code, "Unknown")
    if details:
        body["details"] = details
    return body


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _matches(job: JsonDict, selector: str | None) -> bool:
    if not selector:
        return True
    labels = job["metadata"].get("labels") or {}
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key) != value.lstrip("="):
            return False
    return True


@dataclass
class Fault:
    """An injected error: the next ``times`` calls of ``verb`` (None: any) answer ``status``."""

    status: int
    verb: str | None
    times: int
    retry_after_s: int | None
    after_store: bool = False  # a create is stored, then answered with the error


class ApiServerStandIn:
    """The stand-in API server (see the module doc); :meth:`start` it, read :attr:`url`."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], JsonDict] = {}
        self.events: list[tuple[int, str, JsonDict]] = []
        self.version = 1000
        self.oldest_kept = 0  # events with a version <= this are forgotten
        self.created: Counter[str] = Counter()  # name -> 201 answers
        self.conflicts: Counter[str] = Counter()  # name -> 409 answers
        self.bodies: list[JsonDict] = []  # every Job body created, as sent
        self.requests: Counter[str] = Counter()  # verb -> calls
        self.faults_served: Counter[int] = Counter()
        self.peak_unfinished = 0
        self.watch_generation = 0
        self._faults: list[Fault] = []
        self._changed = threading.Condition()
        self._stopping = False
        self._expire_next = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ApiServerStandIn:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """End open watches and stop serving."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    # -- test controls -------------------------------------------------------------------------

    def inject(
        self,
        status: int,
        *,
        verb: str | None = None,
        times: int = 1,
        retry_after_s: int | None = None,
        after_store: bool = False,
    ) -> None:
        """Answer the next ``times`` calls of ``verb`` (create, get, list, watch, delete).

        ``after_store``: a create is carried out before the error is answered (a response
        lost on its way back, e.g. a 500 from a proxy after etcd wrote the Job).
        """
        with self._changed:
            self._faults.append(Fault(status, verb, times, retry_after_s, after_store))

    def drop_watches(self) -> None:
        """Cut every open watch stream mid-stream (no terminating chunk)."""
        with self._changed:
            self.watch_generation += 1
            self._changed.notify_all()

    def compact(self) -> None:
        """Forget the event history: a watch from an older version than now answers 410."""
        with self._changed:
            self.oldest_kept = self.version
            self.events.clear()

    def expire_watches(self) -> None:
        """Cut open watches; the next one answers 410 Gone (history compacted meanwhile)."""
        with self._changed:
            self._expire_next = True
        self.drop_watches()

    def start_pod(self, name: str, namespace: str = "default") -> None:
        """Play the Job controller: one pod of ``name`` is active."""
        self._update(namespace, name, lambda s: s.update(active=1, startTime=_now()))

    def complete(self, name: str, namespace: str = "default") -> None:
        """Play the Job controller: ``name`` succeeded."""
        now = _now()
        conditions = [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
            {"type": "Complete", "status": "True", "lastTransitionTime": now},
        ]
        self._update(
            namespace,
            name,
            lambda s: s.update(
                active=0, succeeded=1, ready=0, completionTime=now, conditions=conditions
            ),
        )

    def fail(self, name: str, reason: str, message: str, namespace: str = "default") -> None:
        """Play the Job controller: ``name`` failed with ``reason`` (e.g. BackoffLimitExceeded)."""
        now = _now()
        conditions = [
            {"type": "FailureTarget", "status": "True", "reason": reason, "message": message},
            {
                "type": "Failed",
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": now,
            },
        ]
        self._update(
            namespace, name, lambda s: s.update(active=0, failed=1, ready=0, conditions=conditions)
        )

    def unfinished(self) -> list[str]:
        """Names of Jobs that have not completed or failed."""
        with self._changed:
            return sorted(n for (_, n), job in self.jobs.items() if not _finished(job))

    def remove(self, name: str, namespace: str = "default") -> None:
        """Delete a Job as its TTL controller would (a DELETED event)."""
        with self._changed:
            job = self.jobs.pop((namespace, name))
            self._record("DELETED", job)

    # -- the store -----------------------------------------------------------------------------

    def _record(self, kind: str, job: JsonDict) -> None:
        """Bump the version, stamp ``job`` and append the event (hold the lock)."""
        self.version += 1
        job["metadata"]["resourceVersion"] = str(self.version)
        self.events.append((self.version, kind, copy.deepcopy(job)))
        unfinished = sum(1 for j in self.jobs.values() if not _finished(j))
        self.peak_unfinished = max(self.peak_unfinished, unfinished)
        self._changed.notify_all()

    def _update(self, namespace: str, name: str, change: Any) -> None:
        with self._changed:
            job = self.jobs[(namespace, name)]
            change(job.setdefault("status", {}))
            self._record("MODIFIED", job)

    def take_fault(self, verb: str) -> Fault | None:
        """The injected fault for this call of ``verb``, if any (used up by one)."""
        with self._changed:
            for fault in self._faults:
                if fault.verb in (None, verb):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    self.faults_served[fault.status] += 1
                    return fault
        return None

    def create(self, namespace: str, body: JsonDict) -> tuple[int, JsonDict]:
        """POST: store the Job or answer why not."""
        name = (body.get("metadata") or {}).get("name", "")
        if body.get("kind") != "Job" or not _DNS_1123.match(name) or len(name) > 63:
            return 422, status_object(422, f'Job.batch "{name}" is invalid: metadata.name')
        with self._changed:
            if (namespace, name) in self.jobs:
                self.conflicts[name] += 1
                return 409, status_object(
                    409,
                    f'jobs.batch "{name}" already exists',
                    name=name,
                    group="batch",
                    kind="jobs",
                )
            self.bodies.append(copy.deepcopy(body))
            job = copy.deepcopy(body)
            metadata = job["metadata"]
            metadata.update(
                namespace=namespace,
                uid=str(uuid.uuid4()),
                creationTimestamp=_now(),
                generation=1,
            )
            job.setdefault("status", {})
            self.jobs[(namespace, name)] = job
            self.created[name] += 1
            self._record("ADDED", job)
            return 201, copy.deepcopy(job)

    def delete(self, namespace: str, name: str) -> tuple[int, JsonDict]:
        """DELETE: remove the Job (its pods are not modelled)."""
        with self._changed:
            job = self.jobs.pop((namespace, name), None)
            if job is None:
                return 404, status_object(404, f'jobs.batch "{name}" not found')
            self._record("DELETED", job)
            return 200, status_object(
                200, "", name=name, group="batch", kind="jobs", uid=job["metadata"]["uid"]
            )

    def get(self, namespace: str, name: str) -> tuple[int, JsonDict]:
        """GET one Job."""
        with self._changed:
            job = self.jobs.get((namespace, name))
            if job is None:
                return 404, status_object(404, f'jobs.batch "{name}" not found')
            return 200, copy.deepcopy(job)

    def list(self, namespace: str, selector: str | None) -> tuple[int, JsonDict]:
        """GET the collection: a JobList at the current version."""
        with self._changed:
            items = [
                copy.deepcopy(job)
                for (ns, _), job in sorted(self.jobs.items())
                if ns == namespace and _matches(job, selector)
            ]
            return 200, {
                "kind": "JobList",
                "apiVersion": "batch/v1",
                "metadata": {"resourceVersion": str(self.version)},
                "items": items,
            }


def _finished(job: JsonDict) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def _handler_for(server: ApiServerStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY, as Go's net/http (the real API server) sets it: without it the
        # header and body writes of one response meet the client's delayed ACK (~40 ms).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Quiet: the tests read the counters instead."""

        def _route(self) -> tuple[str, str | None, dict[str, list[str]]] | None:
            parts = urlsplit(self.path)
            match = _PATH.match(parts.path)
            if match is None:
                self._send(404, status_object(404, f"the server could not find {parts.path}"))
                return None
            return match["ns"], match["name"], parse_qs(parts.query)

        def _route_namespace(self) -> str:
            match = _PATH.match(urlsplit(self.path).path)
            return match["ns"] if match else "default"

        def _send(self, code: int, body: JsonDict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _fault(self, verb: str, body: JsonDict | None = None) -> bool:
            server.requests[verb] += 1
            fault = server.take_fault(verb)
            if fault is None:
                return False
            if fault.after_store and body is not None:
                server.create(self._route_namespace(), body)
            headers = {"Retry-After": str(fault.retry_after_s)} if fault.retry_after_s else {}
            self._send(fault.status, status_object(fault.status, "injected fault"), headers)
            return True

        def do_POST(self) -> None:  # noqa: N802
            route = self._route()
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if route is None or self._fault("create", body):
                return
            self._send(*server.create(route[0], body))

        def do_DELETE(self) -> None:  # noqa: N802
            route = self._route()
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if route is None or self._fault("delete"):
                return
            self._send(*server.delete(route[0], route[1] or ""))

        def do_GET(self) -> None:  # noqa: N802
            route = self._route()
            if route is None:
                return
            namespace, name, query = route
            if name is not None:
                if not self._fault("get"):
                    self._send(*server.get(namespace, name))
                return
            selector = query.get("labelSelector", [None])[0]
            if query.get("watch", ["false"])[0] in ("true", "1"):
                if not self._fault("watch"):
                    self._watch(namespace, selector, query)
                return
            if not self._fault("list"):
                self._send(*server.list(namespace, selector))

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def _watch(self, namespace: str, selector: str | None, query: dict[str, list[str]]) -> None:
            since = int(query.get("resourceVersion", ["0"])[0] or 0)
            timeout_s = float(query.get("timeoutSeconds", ["300"])[0])
            deadline = time.monotonic() + timeout_s
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            with server._changed:
                generation = server.watch_generation
                expire, server._expire_next = server._expire_next, False
                if since < server.oldest_kept or expire:
                    expired = status_object(410, f"too old resource version: {since}")
                    self._chunk(json.dumps({"type": "ERROR", "object": expired}).encode() + b"\n")
                    self._chunk(b"")
                    return
            sent = since
            while True:
                with server._changed:
                    pending = [e for e in server.events if e[0] > sent]
                    while not pending:
                        left = deadline - time.monotonic()
                        if server._stopping or server.watch_generation != generation:
                            break
                        if left <= 0:
                            break
                        server._changed.wait(min(left, 0.5))
                        pending = [e for e in server.events if e[0] > sent]
                    dropped = server._stopping or server.watch_generation != generation
                if dropped:
                    # Cut the stream: no terminating chunk, the connection just closes.
                    self.close_connection = True
                    return
                if not pending:
                    self._chunk(b"")  # the server-side timeout: a clean end of the stream
                    return
                for version, kind, job in pending:
                    sent = version
                    if job["metadata"].get("namespace") == namespace and _matches(job, selector):
                        line = json.dumps({"type": kind, "object": job}).encode() + b"\n"
                        self._chunk(line)

    return Handler
