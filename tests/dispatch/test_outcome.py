"""How a Job's status reads as an image's end, and the retry delays of the API client."""

from __future__ import annotations

from overnight_dispatch.kube import Backoff
from overnight_dispatch.outcome import JobEnd, has_running_pod, job_end


def condition(kind: str, reason: str = "", message: str = "") -> dict[str, str]:
    """One Job condition that holds."""
    return {"type": kind, "status": "True", "reason": reason, "message": message}


def test_only_complete_and_failed_conditions_end_a_job() -> None:
    assert job_end({"status": {}}) is None
    assert job_end({"status": {"conditions": [condition("FailureTarget", "x")]}}) is None
    assert job_end({"status": {"conditions": [condition("SuccessCriteriaMet")]}}) is None
    stale = {"type": "Complete", "status": "False"}
    assert job_end({"status": {"conditions": [stale]}}) is None
    done = {"status": {"conditions": [condition("SuccessCriteriaMet"), condition("Complete")]}}
    assert job_end(done) == JobEnd(succeeded=True)


def test_failure_reasons_name_the_cause() -> None:
    bad = condition("Failed", "PodFailurePolicy", "exit code 3 matching FailJob rule")
    assert job_end({"status": {"conditions": [bad]}}) == JobEnd(
        False, "bad image (exit code 3): PodFailurePolicy: exit code 3 matching FailJob rule"
    )
    backoff = condition("Failed", "BackoffLimitExceeded")
    assert job_end({"status": {"conditions": [backoff]}}) == JobEnd(False, "BackoffLimitExceeded")


def test_running_pod() -> None:
    assert has_running_pod({"status": {"active": 1}})
    assert not has_running_pod({"status": {}})


def test_backoff_doubles_up_to_its_cap_and_honours_retry_after() -> None:
    backoff = Backoff(tries=8, first_s=0.2, max_s=30.0)
    assert [backoff.delay_s(i) for i in range(4)] == [0.2, 0.4, 0.8, 1.6]
    assert backoff.delay_s(20) == 30.0
    assert backoff.delay_s(0, retry_after_s=5) == 5
    assert backoff.delay_s(0, retry_after_s=600) == 30.0
