"""Fixtures for the deploy tests: gcloud without credentials, an emulator, a small model."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.emulator import Emulator


@pytest.fixture(scope="session")
def gcloud() -> str:
    path = shutil.which("gcloud")
    if path is None:
        pytest.skip("gcloud is not installed")
    return path


@pytest.fixture(scope="session")
def gcloud_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gcloud configuration folder of our own, so the user's account is never used."""
    return tmp_path_factory.mktemp("gcloud-config")


@pytest.fixture(scope="session")
def deploy_emulator(emulator: Emulator) -> Emulator:
    """The session's Pub/Sub emulator; these tests isolate themselves by resource names."""
    return emulator


_SAVE_MODEL = """
import sys
import lightgbm as lgb
import mlflow.lightgbm
import numpy as np

# Five columns, as predictor_service.features.prepare_features returns.
rng = np.random.default_rng(0)
features = rng.uniform(0, 30, size=(300, 5))
booster = lgb.train(
    {"objective": "regression", "verbose": -1, "num_leaves": 4},
    lgb.Dataset(features, 2 + features[:, 2] * 3),
    num_boost_round=5,
)
mlflow.lightgbm.save_model(booster, sys.argv[1])
"""


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small LightGBM model saved in MLflow's format (seconds, not a training run)."""
    folder = tmp_path_factory.mktemp("model") / "model"
    # A child process keeps MLflow's import-time warnings out of this one.
    subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _SAVE_MODEL, str(folder)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return folder
