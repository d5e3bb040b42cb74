"""A model baked into the predictor reaches the image whole, while secrets stay out of the build
context (.dockerignore) and of the upload (.gcloudignore) everywhere else.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.kit import dockerfile
from tests.kit.deploy_scripts import ROOT, offline_env

# What `mlflow artifacts download` writes for a logged model, examples included.
MODEL_FILES = {
    "model/MLmodel",
    "model/model.lgb",
    "model/conda.yaml",
    "model/python_env.yaml",
    "model/requirements.txt",
    "model/input_example.json",
    "model/serving_input_example.json",
    "model/metadata/MLmodel",
}
SECRETS = {
    "model/.env",
    "model/tls.pem",
    "model/signing.key",
    "predictor_service/service-account-key.json",
    "my-project-3f2a.json",
}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A checkout holding a downloaded model beside files that must never leave the machine."""
    for relative in MODEL_FILES | SECRETS:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x")
    for ignore_file in (".dockerignore", ".gcloudignore"):
        shutil.copy(ROOT / ignore_file, tmp_path / ignore_file)
    return tmp_path


def test_docker_context_holds_the_whole_model_and_no_secret(checkout: Path) -> None:
    shipped = dockerfile.context_files(checkout)

    assert MODEL_FILES <= shipped
    assert not shipped & SECRETS


def test_upload_holds_the_whole_model_and_no_secret(
    checkout: Path, gcloud: str, gcloud_config: Path
) -> None:
    done = subprocess.run(
        [gcloud, "meta", "list-files-for-upload", str(checkout)],
        env=offline_env(gcloud_config),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    uploaded = set(done.stdout.split())
    assert MODEL_FILES <= uploaded
    assert not uploaded & SECRETS
