"""Predictor service: Pub/Sub push in, ride-duration prediction out."""

import logging
import os

from flask import Flask

from ride_stream.logs import TraceContext, configure_logging
from ride_stream.tracing import Tracing

from .config import Config
from .model import ModelLoadError, ServingModel, load_model
from .publisher import ResultPublisher, make_client
from .push_auth import PushTokenVerifier, make_verifier
from .routes import Routes, Runtime
from .secret_refs import resolve_secret_refs
from .shadow import ShadowRoute

log = logging.getLogger(__name__)


def create_app(
    config: Config | None = None,
    *,
    model: ServingModel | None = None,
    publisher: ResultPublisher | None = None,
    push_verifier: PushTokenVerifier | None = None,
    tracing: Tracing | None = None,
    shadow_publisher: ResultPublisher | None = None,
) -> Flask:
    """Build the app: load the model and create the Pub/Sub client once per worker."""
    config = config or Config.from_env(os.environ)
    configure_logging(config.log_level, config.project_id)
    if model is None:
        # boto3, in the download's child process, reads the AWS keys from the environment it
        # inherits: resolve any Secret Manager references to them first.
        # A bad reference stops the start-up.
        os.environ.update(resolve_secret_refs(os.environ))
        try:
            model = load_model(config.model_uri, config.model_input, config.model_version)
        except ModelLoadError as err:
            log.critical("refusing to start: %s", err, extra={"model_uri": config.model_uri})
            raise
    log.info("model loaded", extra={"model_uri": config.model_uri, "model_version": model.version})
    if publisher is None:
        client = make_client(
            config.publish_max_latency_s, config.publish_timeout_s, config.publish_max_in_flight
        )
        publisher = ResultPublisher(
            client,
            config.project_id,
            config.results_topic,
            config.dead_letter_topic,
            config.publish_timeout_s,
        )
        if config.shadow is not None and shadow_publisher is None:
            # Results and failures alike to the shadow topic, through the same client.
            topic = config.shadow.results_topic
            shadow_publisher = ResultPublisher(
                client, config.project_id, topic, topic, config.publish_timeout_s
            )
    shadow = None
    if config.shadow is not None and shadow_publisher is not None:
        shadow = ShadowRoute(config.shadow.subscription, shadow_publisher)
        log.info("shadow pushes answered apart", extra={"shadow": str(config.shadow)})
    app = Flask(__name__)
    if push_verifier is None:
        push_verifier = make_verifier(
            config.push_audience, config.push_service_account, config.push_auth_mode
        )
    tracing = tracing or Tracing.from_settings("predictor", config.tracing, config.project_id)
    runtime = Runtime(
        model=model,
        publisher=publisher,
        push_verifier=push_verifier,
        tracing=tracing,
        shadow=shadow,
    )
    app.extensions["predictor"] = runtime
    # Every route is in routes.Routes.table; Flask's own dispatch is never reached.
    app.wsgi_app = TraceContext(  # type: ignore[method-assign]
        Routes(runtime, config.max_envelope_bytes)
    )
    return app
