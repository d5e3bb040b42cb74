"""Backend service: coarse estimates at once, accurate durations through the Pub/Sub stream."""

import logging
import os
from datetime import timedelta
from typing import TYPE_CHECKING

from flask import Flask

from ride_stream.logs import TraceContext, configure_logging
from ride_stream.tracing import Tracing

from . import errors
from .coarse import CoarseEstimator
from .config import Config
from .listener import ResultListener, stream_channels
from .listener import make_client as make_subscriber
from .publisher import RidePublisher
from .publisher import make_client as make_publisher
from .ride_store import LocalRides, RideStore
from .routes import Runtime, register

if TYPE_CHECKING:
    from google.cloud import firestore

    from .recorder import Recorder

log = logging.getLogger(__name__)
REPUBLISH_AT_MOST = 1000


def create_app(
    config: Config | None = None,
    *,
    publisher: RidePublisher | None = None,
    listener: ResultListener | None = None,
    estimator: CoarseEstimator | None = None,
    rides: RideStore | None = None,
    recorder: "Recorder | None" = None,
    tracing: Tracing | None = None,
) -> Flask:
    """Build the app; create the clients and this process's results subscription once."""
    config = config or Config.from_env(os.environ)
    configure_logging(config.log_level, config.project_id)
    estimator = estimator or CoarseEstimator.load(config.coarse_model_path)
    tracing = tracing or Tracing.from_settings("backend", config.tracing, config.project_id)
    store = LocalRides()
    if rides is None and config.ride_store == "firestore":
        # Imported only here: a memory store needs neither Firestore's client nor the recorder.
        from .firestore_rides import FirestoreRides, SharedRides, client_from_env
        from .recorder import Recorder

        def connect() -> "firestore.Client":
            return client_from_env(config.project_id, config.firestore_database)

        firestore_rides = FirestoreRides(
            connect(),
            config.rides_collection,
            config.store_timeout_s,
            timedelta(days=config.ride_retention_days),
            connect=connect,
        )
        rides = SharedRides(firestore_rides, store)
        recorder = recorder or Recorder(
            make_subscriber(),
            f"projects/{config.project_id}/subscriptions/{config.recorder_subscription}",
            record=firestore_rides.complete_all,
            channels=stream_channels(config.pubsub_emulator_host),
        )
    if publisher is None:
        publisher = RidePublisher(
            make_publisher(
                config.publish_max_latency_s,
                config.publish_timeout_s,
                config.publish_max_in_flight,
            ),
            config.project_id,
            config.rides_topic,
            config.publish_timeout_s,
        )
    if listener is None:
        listener = ResultListener(
            make_subscriber(),
            config.project_id,
            config.results_topic,
            on_result=store.complete,
            ttl_s=config.results_subscription_ttl_s,
            channels=stream_channels(config.pubsub_emulator_host),
            tracing=tracing,
        )
    app = Flask(__name__, static_folder=None)  # routes.static_file serves static/
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    runtime = Runtime(
        estimator=estimator,
        publisher=publisher,
        listener=listener,
        rides=rides if rides is not None else store,
        recorder=recorder,
        result_timeout_s=config.result_timeout_s,
        tracing=tracing,
    )
    listener.on_resubscribed = lambda: republish_waiting(store, publisher, listener.reply_to)
    listener.start()
    if recorder is not None:
        recorder.start()
    errors.register(app)
    register(app, runtime, config.max_body_bytes)
    app.wsgi_app = TraceContext(app.wsgi_app)  # type: ignore[method-assign]
    log.info(
        "backend ready",
        extra={
            "coarse_model": estimator.version,
            "reply_to": listener.reply_to,
            "ride_store": type(runtime.rides).__name__,
        },
    )
    return app


def republish_waiting(store: LocalRides, publisher: RidePublisher, reply_to: str) -> None:
    """Publish again this process's rides still waiting, whose results may have reached no one.

    Called once the listener has a new results subscription: results published to the old one
    are gone. The newest REPUBLISH_AT_MOST only: older ones are long past any client's wait.
    """
    waiting = store.pending(REPUBLISH_AT_MOST)
    failed = publisher.publish_all([(r.message, r.ride_id) for r in waiting], reply_to)
    log.warning(
        "rides waiting for a result published again",
        extra={"rides": len(waiting) - failed, "failed": failed},
    )
