"""The predictor under gunicorn serving models users bring, on the emulator, answering any producer.

Each model is small and trained in the test; each predictor runs as its container would.
"""

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from devstack.processes import free_port
from devstack.stack import Service, Stack, start_isolated
from predictor_service.model import load_model
from tests.kit import models, stream
from tests.kit.s3 import AWS_ENV, BUCKET

pytestmark = [pytest.mark.emulator, pytest.mark.slow]
RIDE = {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 2.5}
ANY_TIME = datetime(2021, 2, 3, 13, 30, tzinfo=UTC)


@pytest.fixture
def serve(emulator, tmp_path) -> Iterator[Callable[..., Stack]]:
    """Start a predictor (no backend) for a model on topics of its own; stop it afterwards."""
    stacks: list[Stack] = []

    def start(model_uri: str, **env: str) -> Stack:
        stack = start_isolated(
            emulator, tmp_path, backends=0, model_uri=model_uri,
            tracking_uri=env.pop("MLFLOW_TRACKING_URI", "sqlite:///unused.db"), service_env=env,
        )  # fmt: skip
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        stack.stop()


def answer(stack: Stack, data: dict, **attributes: str):  # type: ignore[no-untyped-def]
    return stream.answer(stack, json.dumps(data).encode(), **attributes)


@pytest.fixture
def course_on_s3(s3_endpoint, tmp_path, monkeypatch) -> dict[str, str]:
    """Log the course's baseline with training.course, on a slice of the data, to moto's S3."""
    from training.course import main as train_course
    from training.data import TRAIN_FILE

    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3_endpoint)
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    sample = tmp_path / "trips.parquet"
    pd.read_parquet(TRAIN_FILE).head(3000).to_parquet(sample)
    previous = mlflow.get_tracking_uri()
    try:
        figures = train_course(
            ["--train", str(sample), "--valid", str(sample), "--tracking-uri", tracking_uri,
             "--artifact-location", f"s3://{BUCKET}/course"]
        )  # fmt: skip
    finally:
        mlflow.set_tracking_uri(previous)
    # set_tracking_uri also writes MLFLOW_TRACKING_URI, which the download's child reads.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    return {"run_id": str(figures["run_id"]), "tracking_uri": tracking_uri}


def test_course_pipeline_by_run_id_on_s3_answers_the_course_event(serve, course_on_s3, s3_endpoint):
    run_id = course_on_s3["run_id"]
    stack = serve(
        f"runs:/{run_id}/model", MODEL_URI="", RUN_ID=run_id,
        MLFLOW_TRACKING_URI=course_on_s3["tracking_uri"], MLFLOW_S3_ENDPOINT_URL=s3_endpoint,
        **AWS_ENV,
    )  # fmt: skip
    expected = load_model(f"runs:/{run_id}/model")

    result = answer(stack, {"ride": {**RIDE, "trip_distance": 3.66}, "ride_id": 123})

    body = json.loads(result.data)
    assert result.attributes["ride_id"] == "123" and "reply_to" not in result.attributes
    assert body["ride_id"] == 123
    assert body["model_version"] == f"run:{run_id}"
    # No pickup time in the event: the course's features do not use one either.
    assert body["duration_final"] == expected.duration(74, 75, 3.66, ANY_TIME)


def test_lgbm_regressor_answers_a_ride_without_pickup_time(serve, tmp_path):
    regressor = models.save_lgbm_regressor(tmp_path / "lgbm")
    stack = serve(str(tmp_path / "lgbm"))

    result = answer(stack, {"ride_id": "r-1", "features": RIDE}, ride_id="r-1", reply_to="me")

    row = pd.DataFrame([RIDE])
    body = json.loads(result.data)
    assert result.attributes == {"ride_id": "r-1", "reply_to": "me"}
    assert body["duration_final"] == round(float(regressor.predict(row)[0]), 2)
    assert body["model_version"]  # saved outside a run: MLflow's id of the model


def test_pyfunc_with_the_raw_ride_signature_gets_the_pickup_time(serve, tmp_path):
    models.save_pyfunc(tmp_path / "ride", models.ride_minutes(), models.RIDE_SIGNATURE)
    stack = serve(str(tmp_path / "ride"))

    ride = {**RIDE, "datetime": "2021-02-03T17:45:00"}
    result = answer(stack, {"ride_id": "r-2", "features": ride}, ride_id="r-2")

    assert json.loads(result.data)["duration_final"] == round(2 + 3 * 2.5 + 17 / 10, 2)


def test_model_without_signature_is_served_as_model_input_says(serve, tmp_path):
    regression = models.save_features_regression(tmp_path / "features")
    stack = serve(str(tmp_path / "features"), MODEL_INPUT="features")

    ride = {**RIDE, "datetime": "2021-02-03T08:30:00"}  # a Wednesday: day 2, hour 8.5
    result = answer(stack, {"ride_id": "r-3", "features": ride}, ride_id="r-3")

    row = pd.DataFrame([[74.0, 75.0, 2.5, 8.5, 2.0]], columns=models.FEATURE_NAMES)
    assert json.loads(result.data)["duration_final"] == round(float(regression.predict(row)[0]), 2)


@pytest.mark.parametrize("model_input", [None, "course"])
def test_model_it_cannot_feed_refuses_to_start_naming_the_inputs(tmp_path, model_input):
    models.save_unfeedable(tmp_path / "passengers")
    env = {"PATH": "/usr/bin:/bin", "PROJECT_ID": "test-project",
           "MODEL_URI": str(tmp_path / "passengers"),
           "PUBSUB_EMULATOR_HOST": "127.0.0.1:9"}  # fmt: skip
    if model_input:
        env["MODEL_INPUT"] = model_input  # a signature says more: it is not overridden
    service = Service("predictor_service", free_port(), env, Path(tmp_path / "p.log"))

    service.start(wait=False)
    code = service.process.wait(timeout_s=60)

    log = service.process.log_tail(200)
    service.stop()
    assert code not in (None, 0)
    assert "refusing to start" in log and "passenger_count: double" in log
    assert "PU_DO" in log  # what the predictor can provide
