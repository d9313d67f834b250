"""The dispatcher loop: keep up to N Kubernetes Jobs for queued images, record how each ended.

Two threads share nothing but Redis and Kubernetes:

* the **filler** (the calling thread) takes images off the queue while fewer than
  ``max_active_jobs`` are in flight (:mod:`overnight_dispatch.intake`) and creates one Job per
  image (or, with ``images_per_pod`` K > 1, drain Jobs of K images each);
* the **tracker** (:mod:`overnight_dispatch.tracker`) lists and watches the Jobs and records
  each end in the image state the API shows: ``Complete`` → done, ``Failed`` → failed with the
  condition's reason (``PodFailurePolicy``: a bad image, ``BackoffLimitExceeded``,
  ``DeadlineExceeded``).

Restart safety: Job names are deterministic and every Job carries its claim's token, so on
start-up (and after every re-list) each claim in flight is matched with its Job — created if
missing, its end recorded if it ended while the dispatcher was away — and a create that
answers 409 is recognised as this claim's Job (already dispatched) or an older one (deleted
and created again).
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from types import FrameType

from redis import Redis
from rq.job import JobStatus as RQStatus

from overnight.dispatch.jobspec import LABEL_DOMAIN, build_drain_job, build_job, job_name
from overnight.dispatch.settings import DispatchSettings
from overnight.errors import TransientError
from overnight.jobs.connection import check_redis, connect
from overnight.jobs.ids import job_id_for
from overnight.jobs.state import JobBook
from overnight.jobs.status import JobStatus
from overnight.jobs.upkeep import release_due_retries, requeue_abandoned
from overnight.logs import configure_logging
from overnight_dispatch.intake import STAGE, Claim, DrainClaim, Intake
from overnight_dispatch.kube import JsonDict, KubeJobs, load_batch_api
from overnight_dispatch.outcome import JobEnd, annotation, has_running_pod, job_end
from overnight_dispatch.tracker import DEFAULT_WATCH_TIMEOUT_S, JobTracker

logger = logging.getLogger(__name__)

#: Annotation with the claim token that created a Job (see :mod:`overnight_dispatch.intake`).
TOKEN_ANNOTATION = f"{LABEL_DOMAIN}/dispatch-token"
#: Seconds between looks at the queue when nothing wakes the filler earlier.
DEFAULT_POLL_S = 1.0
#: Reason recorded for a Job deleted before it ended (by hand, or by a node-pool teardown).
DELETED_REASON = "Kubernetes Job deleted before it finished"
#: Attempts at replacing an older Job of the same name (it may take a moment to go away).
REPLACE_TRIES = 20


def label_selector(settings: DispatchSettings) -> str:
    """Selector of this release's image Jobs: component, and the chart's instance label."""
    parts = ["app.kubernetes.io/component=image-job"]
    instance = settings.job_labels.get("app.kubernetes.io/instance")
    if instance:
        parts.append(f"app.kubernetes.io/instance={instance}")
    return ",".join(parts)


class Dispatcher:
    """Queue → Kubernetes Jobs, once each, at most ``max_active_jobs`` at a time."""

    def __init__(
        self,
        settings: DispatchSettings,
        redis: Redis,
        jobs: KubeJobs,
        *,
        poll_s: float = DEFAULT_POLL_S,
        watch_timeout_s: int = DEFAULT_WATCH_TIMEOUT_S,
    ) -> None:
        self.settings = settings
        self.template = settings.job_template()
        self.redis = redis
        self.book = JobBook(redis)
        self.intake = Intake(redis)
        self.jobs = jobs
        self.poll_s = poll_s
        self.stop = threading.Event()
        self.wake = threading.Event()
        self._listed: tuple[set[str], float] | None = None
        self._lock = threading.Lock()
        self.rounds = 0  # filler rounds done (for tests and debugging)
        self.tracker_error: BaseException | None = None
        self.tracker = JobTracker(
            jobs,
            label_selector(settings),
            self.on_event,
            self.on_list,
            self.stop,
            watch_timeout_s=watch_timeout_s,
            backoff=jobs.backoff,
        )

    # -- the two threads -----------------------------------------------------------------------

    def run(self) -> None:
        """Reconcile with the cluster, then fill and track until :attr:`stop` is set."""
        version = self.tracker.sync()  # first list: ends recorded, claims reconciled below
        tracker = threading.Thread(
            target=self._track, args=(version,), name="job-tracker", daemon=True
        )
        tracker.start()
        try:
            while not self.stop.is_set():
                self.reconcile()
                self.fill()
                self.rounds += 1
                self.wake.wait(self.poll_s)
                self.wake.clear()
        finally:
            self.stop.set()
            self.jobs.interrupt_watches()
            tracker.join(timeout=5)
        if self.tracker_error is not None:
            raise self.tracker_error

    def _track(self, version: str) -> None:
        """Run the tracker; if it dies, stop the filler too (the Deployment restarts us)."""
        try:
            self.tracker.run(version)
        except Exception as err:  # noqa: BLE001 - the thread's edge: stop the whole process
            logger.exception("the Job tracker failed; stopping the dispatcher")
            self.tracker_error = err
            self.stop.set()
            self.wake.set()

    def fill(self) -> int:
        """Create Jobs while there is room and work; return how many were created or found."""
        if self.settings.images_per_pod > 1:
            return self._fill_drains()
        dispatched = 0
        while not self.stop.is_set() and self.intake.in_flight() < self.settings.max_active_jobs:
            claim = self.intake.claim()
            if claim is None:
                break
            self.dispatch(claim)
            dispatched += 1
        return dispatched

    # -- one Job per image ---------------------------------------------------------------------

    def dispatch(self, claim: Claim) -> None:
        """Make sure the Job of ``claim`` exists (created now, or found from before)."""
        image = claim.image
        assert image is not None, "claims are dispatched with their payload"
        body = build_job(
            self.template, image.dataset_id, image.image_key, image.image_id, image.pipeline, {}
        )
        body["metadata"]["annotations"][TOKEN_ANNOTATION] = claim.token
        if not claim.created:
            self.intake.set_rq_status(claim.job_id, RQStatus.STARTED)
        self._ensure(body, claim.token)
        if not claim.created:  # unless its end was recorded already (a very quick Job)
            self.intake.save(claim.model_copy(update={"created": True}))
        logger.info(
            "dispatched %s/%s as Job %s",
            image.dataset_id,
            image.image_id,
            body["metadata"]["name"],
            extra={"job_id": claim.job_id, "image_id": image.image_id},
        )

    def _ensure(self, body: JsonDict, token: str) -> None:
        """Create ``body``; on 409 keep the Job if it is this token's, else replace it."""
        name = body["metadata"]["name"]
        for _ in range(REPLACE_TRIES):
            if self.jobs.create(body):
                return
            existing = self.jobs.get(name)
            if existing is None:
                continue  # deleted between the two calls: create again
            if annotation(existing, TOKEN_ANNOTATION) == token:
                logger.info("Job %s exists already (409): dispatched before", name)
                return
            logger.info("Job %s is left from an earlier attempt; replacing it", name)
            self.jobs.delete(name)
            self.stop.wait(self.jobs.backoff.first_s)
        raise TransientError(f"Job {name} could not be replaced after {REPLACE_TRIES} tries")

    def on_event(self, kind: str, job: JsonDict) -> None:
        """Record what a listed or watched Job says about its image (or its drain batch)."""
        if annotation(job, f"{LABEL_DOMAIN}/batch-id") is not None:
            self._on_drain_event(kind, job)
            return
        dataset_id = annotation(job, f"{LABEL_DOMAIN}/dataset-id")
        image_id = annotation(job, f"{LABEL_DOMAIN}/image-id")
        if dataset_id is None or image_id is None:
            return
        claim = self.intake.claim_of(job_id_for(STAGE, dataset_id, image_id))
        if claim is None or claim.token != annotation(job, TOKEN_ANNOTATION):
            return  # ended and recorded already, or a Job of an earlier attempt
        end = job_end(job)
        if end is None and kind == "DELETED":
            end = JobEnd(succeeded=False, reason=DELETED_REASON)
        if end is not None:
            self.record_end(claim, dataset_id, image_id, end)
        elif has_running_pod(job):
            self.book.set_status(dataset_id, image_id, JobStatus.SEGMENTING)

    def record_end(self, claim: Claim, dataset_id: str, image_id: str, end: JobEnd) -> None:
        """Record an image's end in the state the API shows, then free its place."""
        status = JobStatus.DONE if end.succeeded else JobStatus.FAILED
        self.book.set_status(dataset_id, image_id, status, end.reason)
        self.intake.set_rq_status(
            claim.job_id, RQStatus.FINISHED if end.succeeded else RQStatus.FAILED
        )
        if self.intake.release(claim.job_id):
            log = logger.info if end.succeeded else logger.warning
            log(
                "image %s/%s %s%s",
                dataset_id,
                image_id,
                status.value,
                f": {end.reason}" if end.reason else "",
                extra={"job_id": claim.job_id, "image_id": image_id},
            )
            self._finish_dataset(dataset_id)
        self.wake.set()

    def on_list(self, jobs: list[JsonDict], listed_at: float) -> None:
        """Remember a fresh list: the filler reconciles the claims in flight with it."""
        names = {str(job["metadata"]["name"]) for job in jobs}
        with self._lock:
            self._listed = (names, listed_at)
        self.wake.set()

    def reconcile(self) -> None:
        """Create the Jobs of claims in flight that the last list lacked (see the module doc).

        Only claims older than the list are considered: a younger one may have been created
        after it. A claim whose Job was created and then vanished (deleted by its
        ``ttlSecondsAfterFinished`` while the dispatcher was down) is created again: the pod
        finds the result published and exits at once, or analyses the image it failed on.
        """
        with self._lock:
            listed, self._listed = self._listed, None
        if listed is None:
            return
        names, listed_at = listed
        for claim in self.intake.claims().values():
            if claim.claimed_at >= listed_at:
                continue
            filled = self.intake.with_payload(claim)
            if filled is None or filled.image is None:
                continue
            name = job_name_of(filled)
            if name in names:
                continue
            if filled.created:
                logger.warning("Job %s of a claim in flight is gone; creating it again", name)
            self.dispatch(filled)
        for drain in self.intake.drains().values():
            if drain.claimed_at < listed_at and drain.name not in names:
                self._create_drain(drain)

    # -- drain Jobs (images_per_pod > 1) -------------------------------------------------------

    def _fill_drains(self) -> int:
        """Create drain Jobs for the queued images, K per Job, at most N alive."""
        requeue_abandoned(self.redis)  # images of drain pods that died mid-job
        release_due_retries(self.redis)
        per_pod = self.settings.images_per_pod
        active = len(self.intake.drains())
        wanted = math.ceil(self.intake.queued() / per_pod) - active
        room = self.settings.max_active_jobs - active
        created = 0
        for _ in range(max(0, min(wanted, room))):
            first = self.intake.first_queued()
            if first is None:
                break
            drain = self.intake.new_drain(first)
            drain = drain.model_copy(update={"name": self._drain_body(drain)["metadata"]["name"]})
            self.intake.save_drain(drain)
            self._create_drain(drain)
            created += 1
        return created

    def _drain_body(self, drain: DrainClaim) -> JsonDict:
        body = build_drain_job(
            self.template,
            drain.dataset_id,
            drain.batch_id,
            drain.pipeline,
            {},
            self.settings.images_per_pod,
        )
        body["metadata"]["annotations"][TOKEN_ANNOTATION] = drain.token
        return body

    def _create_drain(self, drain: DrainClaim) -> None:
        self._ensure(self._drain_body(drain), drain.token)
        logger.info("dispatched drain Job %s (%d images)", drain.name, self.settings.images_per_pod)

    def _on_drain_event(self, kind: str, job: JsonDict) -> None:
        name = str(job["metadata"]["name"])
        drain = self.intake.drains().get(name)
        if drain is None or drain.token != annotation(job, TOKEN_ANNOTATION):
            return
        end = job_end(job)
        if end is None and kind != "DELETED":
            return
        if self.intake.release_drain(name):
            reason = end.reason if end is not None else DELETED_REASON
            if end is not None and end.succeeded:
                logger.info("drain Job %s complete", name)
            else:
                logger.warning("drain Job %s failed: %s", name, reason)
        self.wake.set()

    def _finish_dataset(self, dataset_id: str) -> None:
        """Write the dataset's summary table once no image of it waits or runs any more."""
        if not self.book.counts(dataset_id).finished:
            return
        from overnight.jobs.stages import finish_if_done  # the pipeline loads only here
        from overnight.results.layout import DatasetResults
        from overnight.storage import open_store

        store = open_store(self.settings.storage_url, self.settings)
        finish_if_done(self.book, DatasetResults.of_dataset(store, dataset_id), dataset_id)


def job_name_of(claim: Claim) -> str:
    """The name of the Job of ``claim`` (deterministic from dataset and image)."""
    assert claim.image is not None
    return job_name(claim.image.dataset_id, claim.image.image_id)


def run_dispatcher(settings: DispatchSettings) -> None:
    """``overnight dispatch run``: dispatch until SIGTERM or SIGINT (see the module doc)."""
    configure_logging(settings.log_level, settings.log_format)
    redis = connect(settings.redis_url)
    check_redis(redis)
    jobs = KubeJobs(load_batch_api(), settings.job_namespace)
    dispatcher = Dispatcher(settings, redis, jobs)

    def stop(signum: int, frame: FrameType | None) -> None:
        logger.info("signal %d: stopping", signum)
        dispatcher.stop.set()
        dispatcher.wake.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info(
        "dispatching to namespace %s, at most %d Jobs, %d image(s) per pod",
        settings.job_namespace,
        settings.max_active_jobs,
        settings.images_per_pod,
    )
    started = time.monotonic()
    dispatcher.run()
    logger.info("dispatcher stopped after %.0f s", time.monotonic() - started)


__all__ = ["Dispatcher", "label_selector", "run_dispatcher"]
