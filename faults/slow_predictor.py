"""A predictor whose model has a slow spell now and then: `faults.slow_predictor:create_app()`.

The fault is injected through the factory (`create_app(model=...)`), so the service itself has
no fault switch. Read once at start:
- FAULT_SLOW_S: how long a slow prediction takes (default 12 s, past the 10 s ack deadline).
- FAULT_SLOW_INTERVAL_S: at most one slow prediction per interval (default 15 s); 0 makes every
  prediction slow.
"""

import os
import threading
import time
from typing import TYPE_CHECKING, Any

from flask import Flask

import predictor_service
from predictor_service.config import Config
from predictor_service.model import load_model

if TYPE_CHECKING:  # this module runs in the predictor's processes: no lab there
    from devstack.lab import Lab
    from devstack.stack import Stack


class SlowModel:
    """Wrap a model so that the first prediction of each interval takes `delay_s` longer."""

    def __init__(self, model: Any, delay_s: float, interval_s: float) -> None:
        self._model = model
        self.version = model.version
        self._delay_s, self._interval_s = delay_s, interval_s
        self._next_slow = 0.0
        self._lock = threading.Lock()

    def duration(self, *ride: Any) -> float:
        """Predict one ride, after sleeping if this call opens a new interval."""
        with self._lock:
            now = time.monotonic()
            slow = now >= self._next_slow
            if slow:
                self._next_slow = now + self._interval_s
        if slow:
            time.sleep(self._delay_s)
        return float(self._model.duration(*ride))


def create_app() -> Flask:
    """Build the predictor as usual, with its model wrapped in SlowModel."""
    config = Config.from_env(os.environ)
    model = SlowModel(
        load_model(config.model_uri),
        delay_s=float(os.environ.get("FAULT_SLOW_S", "12")),
        interval_s=float(os.environ.get("FAULT_SLOW_INTERVAL_S", "15")),
    )
    return predictor_service.create_app(config, model=model)  # type: ignore[arg-type]


def slow_stack(lab: "Lab", name: str, slow_s: float, interval_s: float) -> "Stack":
    """A stack whose predictor is this one, with the two settings above."""
    return lab.stack(
        name,
        predictor_app="faults.slow_predictor:create_app()",
        service_env={"FAULT_SLOW_S": f"{slow_s:g}", "FAULT_SLOW_INTERVAL_S": f"{interval_s:g}"},
    )
