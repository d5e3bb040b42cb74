"""The tests' S3 artifact store: the lab's moto server (devstack.s3) with the tests' bucket."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devstack import s3

BUCKET = "mlflow-artifacts"
AWS_ENV = s3.KEYS


def s3_client(endpoint: str) -> Any:
    return s3.client(endpoint)


@contextmanager
def moto_s3(workdir: Path) -> Iterator[str]:
    """Run moto's S3 server with one empty bucket; yield its endpoint, stop it by PID after."""
    with s3.moto_server(workdir, BUCKET) as endpoint:
        yield endpoint
