"""Backend service: coarse estimates at once, accurate durations through the Pub/Sub stream."""

import logging
import os

from flask import Flask

from . import errors
from .coarse import CoarseEstimator
from .config import Config
from .logs import configure_logging
from .results import ResultStore
from .routes import EstimateRoute, Runtime, bp
from .stream import ResultListener, RidePublisher, make_clients

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
    configure_logging(config.log_level)
    estimator = estimator or CoarseEstimator.load(config.coarse_model_path)
    store = ResultStore()
    if publisher is None or listener is None:
        publisher_client, subscriber_client = make_clients(config.publish_max_latency_s)
        publisher = publisher or RidePublisher(
            publisher_client, config.project_id, config.rides_topic, config.publish_timeout_s
        )
        listener = listener or ResultListener(
            subscriber_client,
            config.project_id,
            config.results_topic,
            on_result=store.complete,
            ttl_s=config.results_subscription_ttl_s,
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
    app.extensions["backend"] = runtime
    errors.register(app)
    app.register_blueprint(bp)
    app.wsgi_app = EstimateRoute(app, runtime, config.max_body_bytes)  # type: ignore[method-assign]
    log.info(
        "backend ready", extra={"coarse_model": estimator.version, "reply_to": listener.reply_to}
    )
    return app
