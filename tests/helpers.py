"""Small helpers for tests that talk to running services and the emulator."""

import base64
import json
from datetime import datetime
from typing import Any

import requests

from predictor_service.model import LoadedModel


def expected_duration(model: LoadedModel, ride: dict[str, Any]) -> float:
    """What the predictor must answer for `ride`, computed here from the same model."""
    when = datetime.fromisoformat(ride["datetime"])
    return model.duration(ride["PULocationID"], ride["DOLocationID"], ride["trip_distance"], when)


def push_envelope(data: bytes, attributes: dict[str, str] | None = None) -> bytes:
    """Wrap `data` as Pub/Sub wraps a push delivery."""
    return json.dumps(
        {
            "message": {
                "data": base64.b64encode(data).decode(),
                "attributes": attributes or {},
                "messageId": "1",
            },
            "subscription": "projects/test-project/subscriptions/test",
        }
    ).encode()


def post_json(url: str, body: Any, timeout_s: float = 30) -> requests.Response:
    return requests.post(url, json=body, timeout=timeout_s)
