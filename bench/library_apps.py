"""The services built on the official google-cloud-pubsub clients, for side-by-side measurement.

`gunicorn 'bench.library_apps:predictor()'` and `'bench.library_apps:backend()'`: the same
factories and routes, with `google.cloud.pubsub_v1.PublisherClient` (batching tuned for
requests that each wait for their publish) in place of the group-commit publisher, and the
backend's results read by `SubscriberClient.subscribe` on a one-thread scheduler in place of
the hand-written listener.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Flask
from google.cloud import pubsub_v1  # type: ignore[attr-defined]
from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler
from google.cloud.pubsub_v1.types import BatchSettings, FlowControl

import backend_service
import predictor_service
from backend_service.config import Config as BackendConfig
from backend_service.listener import ResultListener
from backend_service.publisher import RidePublisher
from predictor_service.config import Config as PredictorConfig
from predictor_service.publisher import ResultPublisher

# Each request waits for its own publish: a short max_latency, as the issue suggests (1-5 ms).
MAX_LATENCY_S = float(os.environ.get("LIBRARY_MAX_LATENCY_S", "0.002"))


def publisher_client() -> Any:
    """Create the official publisher with batching tuned for waiting requests."""
    return pubsub_v1.PublisherClient(
        batch_settings=BatchSettings(max_messages=100, max_latency=MAX_LATENCY_S)
    )


def predictor() -> Flask:
    """Build the predictor with the official publisher."""
    config = PredictorConfig.from_env(os.environ)
    publisher = ResultPublisher(
        publisher_client(), config.project_id, config.results_topic, config.dead_letter_topic,
        config.publish_timeout_s,
    )  # fmt: skip
    return predictor_service.create_app(config, publisher=publisher)


class LibraryListener(ResultListener):
    """The result listener's subscription, read by the official client's streaming pull."""

    def start(self) -> None:
        self._subscribe()
        scheduler = ThreadScheduler(executor=ThreadPoolExecutor(1))
        self._future = self._client.subscribe(
            self.subscription, callback=self._on_message, scheduler=scheduler,
            flow_control=FlowControl(max_messages=1000),
        )  # fmt: skip

    @property
    def running(self) -> bool:
        return not self._future.done()

    def ensure_open(self, timeout_s: float = 0.0) -> bool:
        return self.running

    def close(self, timeout_s: float = 3.0) -> None:
        self._future.cancel()
        self._future.result(timeout=timeout_s)
        if self.subscription is not None:
            self._delete(self.subscription, timeout_s)


def backend(official_publisher: bool = True) -> Flask:
    """Build the backend with the official subscriber, and the official publisher if asked."""
    config = BackendConfig.from_env(os.environ)
    publisher = None
    if official_publisher:
        publisher = RidePublisher(
            publisher_client(), config.project_id, config.rides_topic, config.publish_timeout_s
        )
    listener = LibraryListener(
        pubsub_v1.SubscriberClient(), config.project_id, config.results_topic,
        on_result=lambda *r: None, ttl_s=config.results_subscription_ttl_s,
    )  # fmt: skip
    app = backend_service.create_app(config, publisher=publisher, listener=listener)
    # The factory makes the store: results go to it from here on (none are due before).
    listener._on_result = app.extensions["backend"].store.complete
    return app
