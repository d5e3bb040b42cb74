"""Download a model folder in a child process that then exits, with or without MLflow.

`python predictor_service/fetch.py URI DEST` prints one JSON line, `{"folder", "version"}`.
An `s3://` folder (what a deploy pins a registry version to) is copied with botocore (boto3's
core) alone: no MLflow import, the lean start. Any other remote URI (`models:/`, `runs:/`, ...)
goes through MLflow's client, which resolves an alias to its version first. Either way botocore
(and MLflow, SQLAlchemy, ...) stays in the child: the worker that serves the model reads a local
folder.
Run by path, not with -m: -m would import the predictor package (Flask, gRPC, numpy) first.
This file imports nothing from the package for the same reason.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

_MODELS_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")
_MODELS_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")
_RUNS = re.compile(r"^runs:/(?P<run_id>[^/]+)/")
# Cloud Run's startup probe gives a revision at most 240 s to become ready.
TIMEOUT_S = 240.0
ERROR_CHARS = 1500
# Objects of a model folder fetched at once: each is a round trip, and a folder holds about ten.
S3_PARALLEL = 8
COPY_CHUNK_BYTES = 1 << 20


class FetchError(RuntimeError):
    """The child could not resolve or download the model; the message says why."""


def fetch_in_child(uri: str, dest: Path, timeout_s: float = TIMEOUT_S) -> tuple[Path, str | None]:
    """Download `uri` into `dest` in a child process; return the folder and the version."""
    argv = [sys.executable, str(Path(__file__).resolve()), uri, str(dest)]
    try:
        child = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as err:
        raise FetchError(f"downloading {uri!r} took more than {timeout_s:g} s") from err
    if child.returncode != 0:
        raise FetchError(child.stderr.strip()[-ERROR_CHARS:] or f"exit code {child.returncode}")
    found = json.loads(child.stdout.strip().splitlines()[-1])
    return Path(found["folder"]), found["version"]


def named_version(uri: str) -> str | None:
    """The version a URI names by itself (models:/NAME/N, runs:/ID/...); None for the others."""
    if match := _MODELS_VERSION.match(uri):
        return f"{match['name']}/{match['version']}"
    if match := _RUNS.match(uri):
        return f"run:{match['run_id']}"
    return None


def pin(uri: str) -> tuple[str, str | None]:
    """Resolve a registry alias to its version, so the version reported is the one loaded."""
    if match := _MODELS_ALIAS.match(uri):
        from mlflow import MlflowClient

        name = match["name"]
        version = MlflowClient().get_model_version_by_alias(name, match["alias"]).version
        return f"models:/{name}/{version}", f"{name}/{version}"
    return uri, named_version(uri)


def s3_client() -> Any:
    """An S3 client set up as MLflow sets up its own, from the same environment variables.

    MLFLOW_S3_ENDPOINT_URL (a store that is not AWS), MLFLOW_S3_IGNORE_TLS and
    MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE; the keys and region through boto's own chain
    (AWS_ACCESS_KEY_ID, ... from --set-secrets or resolved Secret Manager references).
    botocore's client, which boto3 wraps: boto3's own import adds s3transfer, which a folder of
    small files does not need.
    """
    import botocore.session
    from botocore.config import Config

    ignore_tls = os.environ.get("MLFLOW_S3_IGNORE_TLS", "").strip().lower() in ("1", "true")
    style = os.environ.get("MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE", "auto")
    return botocore.session.get_session().create_client(
        "s3",
        config=Config(signature_version="s3v4", s3={"addressing_style": style}),
        endpoint_url=os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None,
        verify=False if ignore_tls else None,
    )


def download_s3_folder(uri: str, dest: Path, client: Any = None) -> Path:
    """Copy every object under the folder `s3://bucket/prefix` into `dest`; return `dest`."""
    from concurrent.futures import ThreadPoolExecutor

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    if not bucket or not prefix:
        raise ValueError(f"{uri!r} names no folder: use s3://bucket/path/to/model")
    client = client or s3_client()
    keys = []
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    for page in pages:
        for item in page.get("Contents", []):
            relative = PurePosixPath(item["Key"][len(prefix) + 1 :])
            if item["Key"].endswith("/"):
                continue  # a folder marker some tools write
            if ".." in relative.parts or relative.is_absolute():
                raise ValueError(f"object {item['Key']!r} would land outside {dest}")
            keys.append((item["Key"], dest.joinpath(*relative.parts)))
    if not keys:
        raise FileNotFoundError(f"no objects under {uri}")
    for _, path in keys:
        path.parent.mkdir(parents=True, exist_ok=True)

    def copy(key_path: tuple[str, Path]) -> None:
        body = client.get_object(Bucket=bucket, Key=key_path[0])["Body"]
        with key_path[1].open("wb") as file:
            for chunk in body.iter_chunks(COPY_CHUNK_BYTES):
                file.write(chunk)

    with ThreadPoolExecutor(max_workers=S3_PARALLEL) as pool:
        list(pool.map(copy, keys))  # list() re-raises the first failure
    return dest


def download(uri: str, dest: str) -> tuple[str, str | None]:
    """Download `uri` into `dest`; return the model folder and the version, if the URI says it."""
    if uri.startswith("s3://"):
        return str(download_s3_folder(uri, Path(dest))), None
    if uri.startswith("gs://"):
        raise ValueError(
            "gs:// folders are not read by the predictor: deploy the model's s3:// folder, a "
            "models:/ URI, or bake the folder into the image"
        )
    import mlflow.artifacts

    pinned, version = pin(uri)
    return mlflow.artifacts.download_artifacts(artifact_uri=pinned, dst_path=dest), version


def main(argv: list[str]) -> int:
    """Download argv's URI into argv's folder; print the folder and version as JSON."""
    uri, dest = argv
    try:
        folder, version = download(uri, dest)
    except Exception as err:  # MLflow and boto3 raise many unrelated types; the parent says which
        sys.stderr.write(f"cannot download model {uri!r}: {type(err).__name__}: {err}\n")
        return 1
    sys.stdout.write(json.dumps({"folder": folder, "version": version}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
