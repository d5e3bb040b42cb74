"""Backend service: coarse estimates at once, accurate durations through the Pub/Sub stream."""

import logging
import os

from flask import Flask

from ride_stream.logs import TraceContext, configure_logging

from . import errors
from .coarse import CoarseEstimator
from .config import Config
from .listener import ResultListener, stream_channels
from .listener import make_client as make_subscriber
from .publisher import RidePublisher
from .publisher import make_client as make_publisher
from .results import ResultStore
from .routes import Runtime, register

log = logging.getLogger(__name__)


def create_app(
    config: Config | None = None,
    *,
    publisher: RidePublisher | None = None,
    listener: ResultListener | None = None,
    estimator: CoarseEstimator | None = None,
) -> Flask:
    """Build the app; create the clients and this process's results subscription once."""
    config = config or Config.from_env(os.environ)
    configure_logging(config.log_level, config.project_id)
    estimator = estimator or CoarseEstimator.load(config.coarse_model_path)
    store = ResultStore()
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
        )
    listener.start()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    runtime = Runtime(
        estimator=estimator,
        publisher=publisher,
        listener=listener,
        store=store,
        result_timeout_s=config.result_timeout_s,
    )
    errors.register(app)
    register(app, runtime, config.max_body_bytes)
    app.wsgi_app = TraceContext(app.wsgi_app)  # type: ignore[method-assign]
    log.info(
        "backend ready", extra={"coarse_model": estimator.version, "reply_to": listener.reply_to}
    )
    return app
