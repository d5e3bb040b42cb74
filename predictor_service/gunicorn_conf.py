"""Gunicorn settings for Cloud Run; `gunicorn -c predictor_service/gunicorn_conf.py`.

Loaded by path, not as `python:predictor_service.gunicorn_conf`: as a module it would
import the package, and with it Flask, numpy and the Pub/Sub client, into the master, where the
worker's copies of those pages would be counted twice. Keep this file free of imports from it.
"""

import gc
import os
from typing import Any

# Cloud Run sends traffic to $PORT. https://cloud.google.com/run/docs/container-contract#port
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8080')}"
# One worker per container and threads for concurrency, as Cloud Run's Python samples do;
# WEB_CONCURRENCY lets a bigger instance (or a local run) add processes.
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "gthread"
# Each push waits for its result's Publish round trip (tens of milliseconds in a region) with the
# CPU idle: enough threads that one CPU, not the round trip, bounds an instance's pushes/s
# (docs/benchmarks.md, "Under a region's latency"). Cloud Run's --concurrency matches it.
threads = int(os.environ.get("GUNICORN_THREADS", "64"))
# Cloud Run enforces its own request timeout; gunicorn's would kill slow model loads.
timeout = 0
# Cloud Run sends SIGKILL 10 s after SIGTERM: drain in less.
# https://cloud.google.com/run/docs/container-contract#instance-shutdown
graceful_timeout = 8
# The model and gRPC clients are created per worker, after fork; never preload.
preload_app = False
# Cloud Run writes a request log entry for every request; gunicorn's would repeat it.
accesslog = None
# Gunicorn's own lines (boot, worker exits, errors) as the same JSON as the app's.
logger_class = "ride_stream.logs.GunicornLogger"


def pre_fork(server: Any, worker: Any) -> None:
    """Keep the master's objects out of the worker's garbage collections.

    A collection writes to every object it visits, which copies the page it sits on: frozen,
    the objects the worker inherits stay shared with the master.
    https://docs.python.org/3/library/gc.html#gc.freeze
    """
    gc.freeze()
