"""Gunicorn settings for Cloud Run; `gunicorn -c backend_service/gunicorn_conf.py`.

Loaded by path, not as `python:backend_service.gunicorn_conf`: as a module it would
import the package, and with it Flask and the Pub/Sub client, into the master, where the
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
# A confirmation holds its thread while it waits for its result, a few round trips to Pub/Sub;
# waiting costs no CPU, so enough threads that one CPU, not the wait, bounds an instance
# (docs/benchmarks.md, "Under a region's latency"). Cloud Run's --concurrency matches it.
threads = int(os.environ.get("GUNICORN_THREADS", "64"))
timeout = 0
# Cloud Run sends SIGKILL 10 s after SIGTERM: gunicorn lets in-flight requests finish (each
# waits at most RESULT_TIMEOUT_S, which config keeps under this), then worker_exit deletes the
# results subscription, all within that.
# https://cloud.google.com/run/docs/container-contract#instance-shutdown
graceful_timeout = 8
preload_app = False
# Cloud Run writes a request log entry for every request; gunicorn's would repeat it.
accesslog = None
# Gunicorn's own lines (boot, worker exits, errors) as the same JSON as the app's.
logger_class = "ride_stream.logs.GunicornLogger"


def worker_exit(server: Any, worker: Any) -> None:
    """Delete this worker's results subscription once it has drained its requests."""
    app = getattr(worker, "wsgi", None)
    extensions = getattr(app, "extensions", {})
    if "backend" in extensions:
        extensions["backend"].close()


def pre_fork(server: Any, worker: Any) -> None:
    """Keep the master's objects out of the worker's garbage collections.

    A collection writes to every object it visits, which copies the page it sits on: frozen,
    the objects the worker inherits stay shared with the master.
    https://docs.python.org/3/library/gc.html#gc.freeze
    """
    gc.freeze()
