import pytest

from overnight.jobs.status import (
    DatasetState,
    JobStatus,
    StatusCounts,
    count_statuses,
    dataset_state,
)


@pytest.mark.parametrize(
    ("counts", "state"),
    [
        (StatusCounts(), DatasetState.QUEUED),
        (StatusCounts(queued=3), DatasetState.QUEUED),
        (StatusCounts(queued=2, running=1), DatasetState.RUNNING),
        (StatusCounts(queued=2, done=1), DatasetState.RUNNING),
        (StatusCounts(done=3), DatasetState.DONE),
        (StatusCounts(failed=2), DatasetState.FAILED),
        (StatusCounts(done=2, failed=1), DatasetState.PARTIAL),
    ],
)
def test_dataset_state_follows_counts(counts: StatusCounts, state: DatasetState) -> None:
    assert dataset_state(counts) is state


def test_every_running_stage_counts_as_running() -> None:
    statuses = [JobStatus.READING, JobStatus.SEGMENTING, JobStatus.COUNTING, JobStatus.PUBLISHING]
    counts = count_statuses([*statuses, JobStatus.QUEUED, JobStatus.DONE, JobStatus.FAILED])
    assert counts == StatusCounts(queued=1, running=4, done=1, failed=1)
    assert counts.total == 7 and not counts.finished


def test_status_values_are_the_api_strings() -> None:
    assert [s.value for s in JobStatus] == [
        "queued",
        "reading",
        "segmenting",
        "counting",
        "publishing",
        "done",
        "failed",
    ]
    assert JobStatus("done") == "done"
