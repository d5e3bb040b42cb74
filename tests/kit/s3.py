"""moto's S3 server on a loopback port: the S3 artifact store, without AWS."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from devstack.processes import Process, free_port, port_open, wait_until

BUCKET = "mlflow-artifacts"
# moto accepts any keys; these are placeholders, not credentials.
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


def boto_keys() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
            "region_name": "us-east-1"}  # fmt: skip


def s3_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, **boto_keys())


@contextmanager
def moto_s3(workdir: Path) -> Iterator[str]:
    """Run moto's S3 server with one empty bucket; yield its endpoint, stop it by PID after."""
    port = free_port()
    server = Process(
        "moto",
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        env={"PATH": "/usr/bin:/bin"},
        log_path=workdir / "moto.log",
    )
    server.start()
    try:
        wait_until(lambda: port_open("127.0.0.1", port), 30, what="moto's S3 server")
        endpoint = f"http://127.0.0.1:{port}"
        s3_client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()
