"""The bench model in an S3 folder on moto's S3 server: the store a deployed predictor reads.

Two ways to the same folder: its s3:// URI, as a deploy pins it (copied with botocore alone), and a
registry version whose source it is (`models:/ride-duration-s3@production`, copied by MLflow).
"""

import subprocess
import sys
from contextlib import AbstractContextManager
from pathlib import Path

from devstack import s3
from devstack.stack import ROOT

BUCKET = "bench-models"
PREFIX = "mlflow/1/models/bench/artifacts"
NAME = "ride-duration-s3"
ALIAS = "production"
# Ensure NAME@ALIAS is a version whose source is argv[2]; print its models:/ URI.
_REGISTER = """
import sys
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
client = MlflowClient(sys.argv[1])
try:
    client.create_registered_model(sys.argv[3])
except MlflowException:
    pass  # registered by an earlier run
try:
    version = client.get_model_version_by_alias(sys.argv[3], sys.argv[4])
except MlflowException:
    version = None
if version is None or version.source != sys.argv[2]:
    version = client.create_model_version(sys.argv[3], source=sys.argv[2])
    client.set_registered_model_alias(sys.argv[3], sys.argv[4], version.version)
print(f"models:/{sys.argv[3]}/{version.version}")
"""


def moto_store(workdir: Path) -> AbstractContextManager[str]:
    """The lab's moto S3 server with BUCKET; its endpoint, stopped by PID on exit."""
    return s3.moto_server(workdir, BUCKET)


def upload(endpoint: str, folder: Path) -> str:
    """Copy the model folder to BUCKET/PREFIX; return its s3:// URI."""
    client = s3.client(endpoint)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), BUCKET, f"{PREFIX}/{path.relative_to(folder).as_posix()}")
    return f"s3://{BUCKET}/{PREFIX}"


def register(tracking_uri: str, folder_uri: str) -> tuple[str, str]:
    """Make NAME@ALIAS the registry version of `folder_uri`; return its URI and version."""
    done = subprocess.run(
        [sys.executable, "-c", _REGISTER, tracking_uri, folder_uri, NAME, ALIAS],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    uri = done.stdout.strip().splitlines()[-1]
    return f"models:/{NAME}@{ALIAS}", uri.removeprefix("models:/")


def env(endpoint: str) -> dict[str, str]:
    """What a predictor needs to read the store: its endpoint and the keys."""
    return {"MLFLOW_S3_ENDPOINT_URL": endpoint, **s3.KEYS}
