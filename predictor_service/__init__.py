"""Predictor service: Pub/Sub push in, ride-duration prediction out."""

import logging
import os

from flask import Flask

from .config import Config
from .logs import configure_logging
from .model import LoadedModel, ModelLoadError, load_model
from .publisher import ResultPublisher, make_client
from .push_auth import PushTokenVerifier, make_verifier
from .routes import PushRoute, Runtime, bp
from .secrets import resolve_secret_refs

log = logging.getLogger(__name__)


def create_app(
    config: Config | None = None,
    *,
    model: LoadedModel | None = None,
    publisher: ResultPublisher | None = None,
    push_verifier: PushTokenVerifier | None = None,
) -> Flask:
    """Build the app: load the model and create the Pub/Sub client once per worker."""
    config = config or Config.from_env(os.environ)
    configure_logging(config.log_level)
    if model is None:
        # boto3, inside MLflow, reads the AWS keys from the environment: resolve any Secret
        # Manager references to them first. A bad reference stops the start-up.
        os.environ.update(resolve_secret_refs(os.environ))
        try:
            model = load_model(config.model_uri)
        except ModelLoadError as err:
            log.critical("refusing to start: %s", err, extra={"model_uri": config.model_uri})
            raise
    log.info("model loaded", extra={"model_uri": config.model_uri, "model_version": model.version})
    if publisher is None:
        publisher = ResultPublisher(
            make_client(config.publish_max_latency_s, config.publish_timeout_s),
            config.project_id,
            config.results_topic,
            config.dead_letter_topic,
            config.publish_timeout_s,
        )
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_envelope_bytes
    if push_verifier is None:
        push_verifier = make_verifier(config.push_audience, config.push_service_account)
    runtime = Runtime(model=model, publisher=publisher, push_verifier=push_verifier)
    app.extensions["predictor"] = runtime
    app.register_blueprint(bp)
    app.wsgi_app = PushRoute(app, runtime, config.max_envelope_bytes)  # type: ignore[method-assign]
    return app
