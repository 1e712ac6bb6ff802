"""The test suite. Imported by pytest before tests/conftest.py (and so before numpy, torch, XGBoost or LightGBM
load their thread pools): each xdist worker gets its share of the cores as OpenMP/BLAS threads.

``make test`` and ``make test-fast`` run two workers on a 2-core machine; with each library's default (a thread
per core) that is four spinning OpenMP threads on two cores, and a thread waiting at a barrier for a core that
the other worker holds: a torch MLP's 8 epochs on 500 rows took 2-5 s instead of 0.2 s. trainpipe honours
``OMP_NUM_THREADS`` (LightGBM's default follows it, tests/test_lightgbm_threads.py), as in parallel tuning
workers. A value already in the environment is kept; a run without xdist is left alone.
"""

from __future__ import annotations

import os


def _threads_per_worker() -> None:
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers or not workers.isdigit() or int(workers) < 1:
        return
    share = str(max(1, len(os.sched_getaffinity(0)) // int(workers)))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, share)


_threads_per_worker()
