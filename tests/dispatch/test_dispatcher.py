"""The dispatcher against the Kubernetes API server stand-in (real HTTP) and a real Redis."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import kubernetes_validate
from apiserver_standin import ApiServerStandIn
from rq.job import JobStatus as RQStatus

from conftest import RunningDispatcher
from fixtures_redis import RedisServer, ServiceProcess, service_env, wait_for
from overnight.dispatch.jobspec import job_name
from overnight.dispatch.settings import DispatchSettings
from overnight.jobs.ids import job_id_for
from overnight.jobs.queues import fetch_job
from overnight.jobs.state import DatasetRecord, JobBook
from overnight.jobs.status import JobStatus
from overnight.jobs.submit import Submitter
from overnight_dispatch.intake import Intake

Settings = Callable[..., DispatchSettings]
Enqueue = Callable[[int], DatasetRecord]
Start = Callable[..., RunningDispatcher]

#: Kubernetes version the Job bodies are validated against (strict: unknown fields fail).
K8S_VERSION = "1.33.0"


def names_of(record: DatasetRecord, n: int) -> list[str]:
    """Job names of ``field_000`` ... of ``record``."""
    return [job_name(record.id, f"field_{i:03d}") for i in range(n)]


def status_of(book: JobBook, record: DatasetRecord, name: str) -> JobStatus | None:
    """The image state of the image whose Job is ``name``."""
    for state in book.images(record.id):
        if job_name(record.id, state.image_id) == name:
            return state.status
    return None


def alive(standin: ApiServerStandIn, n: int) -> list[str] | None:
    """The unfinished Jobs when there are exactly ``n``, else None."""
    live = standin.unfinished()
    return live if len(live) == n else None


def test_one_job_per_image_throttled_and_ends_recorded(
    standin: ApiServerStandIn,
    redis_server: RedisServer,
    make_settings: Settings,
    enqueue: Enqueue,
    run_dispatcher: Start,
) -> None:
    record = enqueue(7)
    runner = run_dispatcher(make_settings(max_active_jobs=3))
    book = JobBook(redis_server.client())
    names = names_of(record, 7)
    failures = {
        names[1]: ("PodFailurePolicy", "Container worker for pod x failed with exit code 3"),
        names[4]: ("BackoffLimitExceeded", "Job has reached the specified backoff limit"),
    }
    finished: set[str] = set()
    while len(finished) < 7:
        expected = min(3, 7 - len(finished))
        live = wait_for(lambda e=expected: alive(standin, e), 10, f"{expected} Jobs alive")
        name = live[0]
        standin.start_pod(name)
        wait_for(lambda n=name: status_of(book, record, n) == JobStatus.SEGMENTING, 5, "running")
        if name in failures:
            standin.fail(name, *failures[name])
        else:
            standin.complete(name)
        finished.add(name)
    wait_for(lambda: book.counts(record.id).finished, 10, "every end recorded")
    wait_for(lambda: not Intake(redis_server.client()).in_flight(), 10, "every claim released")
    runner.stop()

    assert standin.peak_unfinished == 3  # throttled to N, and N were used
    assert dict(standin.created) == {name: 1 for name in names}
    assert not standin.conflicts
    states = {s.image_id: s for s in book.images(record.id)}
    assert states["field_001"].status == JobStatus.FAILED
    assert states["field_001"].reason.startswith("bad image (exit code 3): PodFailurePolicy")
    assert states["field_004"].status == JobStatus.FAILED
    assert states["field_004"].reason.startswith("BackoffLimitExceeded")
    assert {s.status for i, s in states.items() if i not in ("field_001", "field_004")} == {
        JobStatus.DONE
    }
    assert Intake(redis_server.client()).in_flight() == 0
    rq_done = fetch_job(redis_server.client(), job_id_for("segmentation", record.id, "field_000"))
    rq_bad = fetch_job(redis_server.client(), job_id_for("segmentation", record.id, "field_001"))
    assert rq_done is not None and rq_done.get_status() == RQStatus.FINISHED
    assert rq_bad is not None and rq_bad.get_status() == RQStatus.FAILED
    for body in standin.bodies:
        kubernetes_validate.validate(body, K8S_VERSION, strict=True)
    first = standin.bodies[0]
    assert first["metadata"]["labels"]["app.kubernetes.io/instance"] == "test-release"
    assert first["spec"]["template"]["spec"]["containers"][0]["args"][:2] == [
        "worker",
        "run-image",
    ]


def test_repeat_create_is_already_dispatched_and_an_older_job_is_replaced(
    standin: ApiServerStandIn,
    redis_server: RedisServer,
    make_settings: Settings,
    enqueue: Enqueue,
    submitter: Submitter,
    make_dispatcher: Callable[..., object],
    run_dispatcher: Start,
) -> None:
    record = enqueue(1)
    (name,) = names_of(record, 1)
    book = JobBook(redis_server.client())
    settings = make_settings()
    claim = Intake(redis_server.client()).claim()
    assert claim is not None
    dispatcher = make_dispatcher(settings)
    dispatcher.dispatch(claim)  # type: ignore[attr-defined]
    dispatcher.dispatch(claim)  # a repeat (e.g. after a restart): 409, same token
    assert standin.created[name] == 1 and standin.conflicts[name] == 1

    runner = run_dispatcher(settings)
    standin.fail(name, "DeadlineExceeded", "Job was active longer than specified deadline")
    wait_for(lambda: book.counts(record.id).failed == 1, 10, "the failure recorded")
    assert submitter.retry_failed(record) == ["field_000"]  # the failed Job still exists
    wait_for(lambda: standin.created[name] == 2, 10, "the older Job replaced")
    assert standin.requests["delete"] == 1
    standin.complete(name)
    wait_for(lambda: book.counts(record.id).done == 1, 10, "the retry's end recorded")
    runner.stop()
    assert book.image(record.id, "field_000").reason == ""  # type: ignore[union-attr]
    assert Intake(redis_server.client()).in_flight() == 0


def test_throttling_and_server_errors_are_backed_off_and_retried(
    standin: ApiServerStandIn,
    redis_server: RedisServer,
    make_settings: Settings,
    enqueue: Enqueue,
    run_dispatcher: Start,
) -> None:
    standin.inject(500, verb="list", times=2)
    standin.inject(429, verb="create", retry_after_s=1)
    standin.inject(500, verb="create", after_store=True)  # stored, but the answer is lost
    standin.inject(503, verb="watch")
    record = enqueue(2)
    names = names_of(record, 2)
    sleeps: list[float] = []
    runner = run_dispatcher(make_settings(), sleeps)
    wait_for(lambda: len(standin.unfinished()) == 2, 10, "both Jobs created")
    runner.stop()
    assert dict(standin.faults_served) == {500: 3, 429: 1, 503: 1}
    assert 1.0 in sleeps  # Retry-After honoured
    assert dict(standin.created) == {name: 1 for name in names}
    assert sum(standin.conflicts.values()) == 1  # the retried create found its own Job


def test_a_dropped_watch_is_resumed_and_410_gone_lists_again(
    standin: ApiServerStandIn,
    redis_server: RedisServer,
    make_settings: Settings,
    enqueue: Enqueue,
    run_dispatcher: Start,
) -> None:
    record = enqueue(3)
    names = names_of(record, 3)
    book = JobBook(redis_server.client())
    runner = run_dispatcher(make_settings())
    tracker = runner.dispatcher.tracker
    wait_for(lambda: len(standin.unfinished()) == 3, 10, "three Jobs created")
    assert tracker.lists == 1

    standin.drop_watches()
    standin.complete(names[0])
    wait_for(lambda: status_of(book, record, names[0]) == JobStatus.DONE, 10, "end after a drop")
    assert tracker.resumes >= 1 and tracker.lists == 1  # resumed, not re-listed

    standin.expire_watches()
    standin.complete(names[1])
    wait_for(lambda: tracker.lists == 2, 10, "a re-list after 410 Gone")
    wait_for(lambda: status_of(book, record, names[1]) == JobStatus.DONE, 10, "end after 410")
    standin.complete(names[2])
    wait_for(lambda: book.counts(record.id).finished, 10, "every end recorded")
    wait_for(lambda: not Intake(redis_server.client()).in_flight(), 10, "every claim released")
    runner.stop()
    assert dict(standin.created) == {name: 1 for name in names}


def test_a_restarted_dispatcher_loses_and_doubles_nothing_in_process(
    standin: ApiServerStandIn,
    redis_server: RedisServer,
    make_settings: Settings,
    enqueue: Enqueue,
    run_dispatcher: Start,
) -> None:
    record = enqueue(6)
    names = names_of(record, 6)
    book = JobBook(redis_server.client())
    settings = make_settings(max_active_jobs=3)
    # A dispatcher that died between taking an image off the queue and creating its Job:
    orphan = Intake(redis_server.client()).claim()
    assert orphan is not None and orphan.image is not None
    first = run_dispatcher(settings)
    wait_for(lambda: len(standin.unfinished()) == 3, 10, "three Jobs, the orphan's among them")
    assert job_name(record.id, orphan.image.image_id) in standin.unfinished()
    first.stop()
    # While no dispatcher runs, two Jobs end and one is removed by its TTL after ending.
    live = standin.unfinished()
    standin.complete(live[0])
    standin.fail(live[1], "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    standin.complete(live[2])
    standin.remove(live[2])

    second = run_dispatcher(settings)
    wait_for(lambda: status_of(book, record, live[0]) == JobStatus.DONE, 10, "end while down")
    # the two ends are recorded one after the other: poll the second as well
    wait_for(lambda: status_of(book, record, live[1]) == JobStatus.FAILED, 10, "failure while down")
    intake = Intake(redis_server.client())
    while intake.in_flight():
        wait_for(lambda: standin.unfinished() or not intake.in_flight(), 10, "Jobs or the end")
        for name in standin.unfinished():
            standin.complete(name)
    second.stop()
    # The Job deleted while nobody watched was created again (its pod would find the
    # result published and exit at once); every other image has exactly one Job.
    assert {n: c for n, c in standin.created.items() if c != 1} == {live[2]: 2}
    assert set(standin.created) == set(names)
    assert book.counts(record.id).done == 5 and book.counts(record.id).failed == 1
    assert Intake(redis_server.client()).in_flight() == 0
    assert redis_server.client().llen("rq:queue:overnight-segmentation") == 0


def test_images_per_pod_creates_drain_jobs(
    standin: ApiServerStandIn,
    redis_server: RedisServer,
    make_settings: Settings,
    enqueue: Enqueue,
    run_dispatcher: Start,
) -> None:
    enqueue(7)
    runner = run_dispatcher(make_settings(images_per_pod=3, max_active_jobs=2))
    wait_for(lambda: len(standin.unfinished()) == 2, 10, "two drain Jobs")
    rounds = runner.dispatcher.rounds
    wait_for(lambda: runner.dispatcher.rounds >= rounds + 3, 10, "three more filler rounds")
    assert len(standin.created) == 2  # at most N, though ceil(7 / 3) = 3 would be wanted
    standin.complete(standin.unfinished()[0])  # (no pod took images: the queue still holds 7)
    wait_for(lambda: len(standin.created) == 3, 10, "a third drain Job")
    runner.stop()
    assert redis_server.client().llen("rq:queue:overnight-segmentation") == 7
    for body in standin.bodies:
        kubernetes_validate.validate(body, K8S_VERSION, strict=True)
        args = body["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args == ["worker", "drain", "--max-images", "3"]


def write_kubeconfig(folder: Path, server_url: str) -> Path:
    """A kubeconfig that points the official client at the stand-in."""
    path = folder / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "standin", "cluster": {"server": server_url}}],
        "users": [{"name": "dispatcher", "user": {"token": "not-checked"}}],
        "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "dispatcher"}}],
        "current-context": "standin",
    }
    path.write_text(json.dumps(config))
    return path


def test_a_killed_dispatcher_process_loses_and_doubles_nothing(
    standin: ApiServerStandIn,
    redis_server: RedisServer,
    store_url: str,
    enqueue: Enqueue,
    services: Callable[[list[str], dict[str, str]], ServiceProcess],
    tmp_path: Path,
) -> None:
    record = enqueue(8)
    names = names_of(record, 8)
    book = JobBook(redis_server.client())
    intake = Intake(redis_server.client())
    env = service_env(
        redis_url=redis_server.url,
        storage_url=store_url,
        max_active_jobs="3",
        job_labels=json.dumps({"app.kubernetes.io/instance": "test-release"}),
    )
    env["KUBECONFIG"] = str(write_kubeconfig(tmp_path, standin.url))
    env.pop("KUBERNETES_SERVICE_HOST", None)  # not in a pod: use the kubeconfig

    first = services(["dispatch", "run"], env)
    live = wait_for(lambda: alive(standin, 3), 30, f"three Jobs: {first.output()[-2000:]}")
    standin.complete(live[0])
    wait_for(lambda: status_of(book, record, live[0]) == JobStatus.DONE, 10, "the first end")
    wait_for(lambda: len(standin.created) == 4, 10, "a fourth Job")
    first.kill()  # SIGKILL, mid-run
    live = standin.unfinished()
    standin.complete(live[0])  # ends while no dispatcher runs
    standin.fail(live[1], "PodFailurePolicy", "Container worker failed with exit code 3")

    second = services(["dispatch", "run"], env)
    while intake.in_flight() or intake.queued():
        wait_for(lambda: standin.unfinished() or not intake.in_flight(), 30, "Jobs or the end")
        for name in standin.unfinished():
            standin.complete(name)
    assert second.terminate() == 0, second.output()[-2000:]
    assert dict(standin.created) == {name: 1 for name in names}
    counts = book.counts(record.id)
    assert (counts.done, counts.failed, counts.queued, counts.running) == (7, 1, 0, 0)
