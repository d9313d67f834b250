"""How many threads one analysis process gives TensorFlow (and the native libraries under it).

With ``W`` worker processes on ``C`` cores, TensorFlow's default (every process uses every
core for its intra-op pool) runs ``W × C`` busy threads on ``C`` cores. Each worker gets
``max(1, C // W)`` threads instead (``threads_for``), unless a setting names the number
(``OVERNIGHT_THREADS_PER_WORKER``). Measured with ``python -m bench.pipeline_speed``
(``cytometry@2`` against ``cytometry@2/2threads`` in ``bench/results/pipeline_speed.md``).

The limits must be in place before TensorFlow creates its thread pools: :func:`configure_threads`
sets the environment variables TensorFlow, OpenMP and oneDNN read at start-up, and, when
TensorFlow is already imported but not yet running, its ``tf.config.threading`` values too.
"""

from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger(__name__)

#: Environment variables that cap a native library's threads, set by :func:`configure_threads`.
THREAD_ENV_VARS = ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def threads_for(workers: int, setting: int = 0, cores: int | None = None) -> int:
    """Threads per worker process: ``setting`` when > 0, else the cores shared out, at least 1.

    Examples
    --------
    >>> threads_for(2, cores=2), threads_for(1, cores=2), threads_for(3, cores=2)
    (1, 2, 1)
    >>> threads_for(2, setting=2, cores=2)
    2
    """
    if setting > 0:
        return setting
    cores = available_cores() if cores is None else cores
    return max(1, cores // max(1, workers))


def configured_threads() -> int:
    """Threads this process may use for inference (ONNX Runtime reads it too).

    What :func:`configure_threads` set, else every core this process may run on.
    """
    try:
        threads = int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0"))
    except ValueError:
        threads = 0
    return threads if threads > 0 else available_cores()


def configure_threads(threads: int) -> None:
    """Cap this process's TensorFlow intra-op pool (and OpenMP) at ``threads``; inter-op 1.

    Call it before the first model loads. When TensorFlow already runs with other pools the
    limits cannot change any more: that is logged, not raised (the analysis still works).
    NumPy's and SciPy's OpenBLAS, loaded already, are limited too (:func:`limit_blas_threads`).
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    limit_blas_threads(threads)
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as err:  # the context was initialised before
        logger.warning("TensorFlow threads not changed to %d: %s", threads, err)


#: Thread setters of the OpenBLAS builds NumPy and SciPy wheels bundle (and plain OpenBLAS).
_BLAS_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


def limit_blas_threads(threads: int) -> int:
    """Set the threads of every OpenBLAS loaded in this process; how many libraries were set.

    ``OPENBLAS_NUM_THREADS`` only counts when the library loads, and a forked worker inherits
    NumPy loaded: the library's own setter is called instead (as ``threadpoolctl`` does).
    """
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = sorted(
                {line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line}
            )
    except OSError:  # not Linux: the environment variables are all there is
        return 0
    done = 0
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _BLAS_SETTERS:
            setter = getattr(library, name, None)
            if setter is not None:
                setter(ctypes.c_int(threads))
                done += 1
                break
    return done
