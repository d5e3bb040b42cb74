"""The S3 artifact store: log the model to a bucket on moto's S3 server and load it back."""

from datetime import datetime

import lightgbm
import mlflow
import pytest
import requests
from mlflow import MlflowClient

from devstack.processes import free_port
from devstack.stack import Service
from predictor_service.features import prepare_features
from predictor_service.model import load_model
from tests.kit.s3 import AWS_ENV, BUCKET, s3_client

# Seconds, not milliseconds: trains the model, starts moto and a predictor.
pytestmark = pytest.mark.slow


@pytest.fixture
def s3_registry(s3_endpoint, trained_model, tmp_path, monkeypatch):
    """Log the trained booster to an experiment whose artifact root is the S3 bucket."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3_endpoint)
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        experiment = mlflow.create_experiment("s3-test", artifact_location=f"s3://{BUCKET}/mlflow")
        booster = lightgbm.Booster(model_file=str(trained_model.folder / "model.lgb"))
        with mlflow.start_run(experiment_id=experiment) as run:
            # The model is the booster and the zone-pair table training logs beside it.
            table = str(trained_model.folder / "extra_files" / "pair_table.json")
            info = mlflow.lightgbm.log_model(
                booster, name="model", registered_model_name="rd-s3", extra_files=[table]
            )
        MlflowClient().set_registered_model_alias(
            "rd-s3", "production", info.registered_model_version
        )
        yield {"tracking_uri": tracking_uri, "run_id": run.info.run_id, "model_uri": info.model_uri,
               "artifact_uri": info.artifact_path}  # fmt: skip
    finally:
        mlflow.set_tracking_uri(previous)


FEATURES = prepare_features([74, 132], [75, 265], [2.5, 18.0], [datetime(2021, 2, 3, 8, 30)] * 2)


def test_model_artifacts_land_in_the_bucket(s3_registry, s3_endpoint):
    s3 = s3_client(s3_endpoint)

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="mlflow/")["Contents"]]

    assert any(key.endswith("/MLmodel") for key in keys)
    assert any(key.endswith("/model.lgb") for key in keys)


@pytest.mark.parametrize("uri_kind", ["alias", "run"])
def test_model_loads_from_s3_and_predicts_as_the_original(s3_registry, trained_model, uri_kind):
    uri = {"alias": "models:/rd-s3@production", "run": f"runs:/{s3_registry['run_id']}/model"}

    loaded = load_model(uri[uri_kind])

    original = load_model(str(trained_model.folder))
    assert loaded.predict(FEATURES).tolist() == original.predict(FEATURES).tolist()


def test_predictor_process_starts_from_an_s3_model(s3_registry, s3_endpoint, tmp_path):
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        **AWS_ENV,
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        "MLFLOW_TRACKING_URI": s3_registry["tracking_uri"],
        "MODEL_URI": "models:/rd-s3@production",
        "PROJECT_ID": "test-project",
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{free_port()}",
    }
    service = Service("predictor_service", port, env, tmp_path / "predictor.log")
    try:
        service.start()
        ready = requests.get(f"{service.url}/readyz", timeout=5).json()
    finally:
        service.stop()

    assert ready["model_version"] == "rd-s3/1"
    assert "testing" not in service.process.log_tail(500)  # no key in the logs
