"""The queue side of overnight: job payloads, job and dataset state, workers.

Modules, from the outside in: :mod:`~overnight.jobs.submit` (register a dataset, enqueue its
images once), :mod:`~overnight.jobs.queues` (RQ queues, deterministic job ids),
:mod:`~overnight.jobs.tasks` (the job functions), :mod:`~overnight.jobs.stages` (the work of
each stage), :mod:`~overnight.jobs.worker` and :mod:`~overnight.jobs.upkeep` (the worker
process, heartbeats, re-queueing abandoned jobs), :mod:`~overnight.jobs.state` (what Redis
holds for the API). Importing this package loads no pipeline: the API stays light.
"""
