"""The bench model in an S3 folder on moto's S3 server: the store a deployed predictor reads.

Two ways to the same folder: its s3:// URI, as a deploy pins it (copied with botocore alone), and a
registry version whose source it is (`models:/ride-duration-s3@production`, copied by MLflow).
"""

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack.processes import Process, free_port, port_open, wait_until
from devstack.stack import ROOT

BUCKET = "bench-models"
PREFIX = "mlflow/1/models/bench/artifacts"
NAME = "ride-duration-s3"
ALIAS = "production"
# moto takes any keys; placeholders, not credentials.
KEYS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
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


@contextmanager
def moto_store(workdir: Path) -> Iterator[str]:
    """Run moto's S3 server with BUCKET on a loopback port; yield its endpoint; stop it by PID."""
    port = free_port()
    argv = [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)]
    server = Process("moto", argv, {"PATH": "/usr/bin:/bin"}, workdir / "moto.log")
    server.start()
    try:
        wait_until(lambda: port_open("127.0.0.1", port), 30, what="moto's S3 server")
        endpoint = f"http://127.0.0.1:{port}"
        _client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


def upload(endpoint: str, folder: Path) -> str:
    """Copy the model folder to BUCKET/PREFIX; return its s3:// URI."""
    client = _client(endpoint)
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
    return {"MLFLOW_S3_ENDPOINT_URL": endpoint, **KEYS}


def _client(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"],
        region_name=KEYS["AWS_DEFAULT_REGION"],
    )
