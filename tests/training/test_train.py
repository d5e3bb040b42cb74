"""Training on the real TLC data: the figures the issue asks for, and what gets registered."""

from datetime import datetime

import pytest
from mlflow import MlflowClient

from backend_service.coarse import CoarseEstimator
from predictor_service.features import prepare_features
from predictor_service.model import load_model

# Seconds, not milliseconds: trains the model on the TLC data.
pytestmark = pytest.mark.slow

COURSE_BASELINE_RMSE = 7.76  # LinearRegression on PU_DO + trip_distance, same split


def test_accurate_model_beats_the_coarse_estimator_and_the_course_baseline(trained_model):
    figures = trained_model.figures

    assert figures["valid_rmse"] < figures["coarse_valid_rmse"] - 0.3
    assert figures["valid_rmse"] < COURSE_BASELINE_RMSE
    assert figures["coarse_valid_rmse"] < COURSE_BASELINE_RMSE


def test_model_is_registered_under_the_production_alias(trained_model):
    client = MlflowClient(trained_model.tracking_uri)

    version = client.get_model_version_by_alias("ride-duration", "production")
    run = client.get_run(version.run_id)

    assert str(version.version) == trained_model.figures["model_version"]
    assert run.data.metrics["valid_rmse"] == trained_model.figures["valid_rmse"]
    assert "num_boost_round" in run.data.params


def test_registry_uri_and_logged_folder_load_the_same_model(trained_model, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_model.tracking_uri)
    features = prepare_features(
        [74, 132], [75, 265], [2.5, 18.0], [datetime(2021, 2, 3, 8, 30)] * 2
    )

    from_registry = load_model(trained_model.model_uri)
    from_folder = load_model(str(trained_model.folder))

    assert from_registry.version == "ride-duration/1"
    assert from_registry.predict(features).tolist() == from_folder.predict(features).tolist()
    assert 3 < from_registry.predict(features)[0] < 30  # a 2.5 mile ride in the morning


def test_coarse_estimator_logged_with_the_run_loads_in_the_backend(trained_model, tmp_path):
    import mlflow

    client = MlflowClient(trained_model.tracking_uri)
    run_id = client.get_model_version_by_alias("ride-duration", "production").run_id
    mlflow.set_tracking_uri(trained_model.tracking_uri)
    path = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="coarse_model.json", dst_path=str(tmp_path)
    )

    estimator = CoarseEstimator.load(path)

    assert estimator.version.startswith("coarse-")
    assert estimator == CoarseEstimator.load()  # training is deterministic: it is the shipped one
