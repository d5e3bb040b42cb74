"""moto's S3 server on a loopback port: a deployed predictor's artifact store, without AWS."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .processes import Process, free_port, port_open, wait_until

# moto takes any keys; placeholders, not credentials.
KEYS = {"AWS_ACCESS_KEY_ID": "moto", "AWS_SECRET_ACCESS_KEY": "moto",
        "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


def client(endpoint: str) -> Any:
    """A boto3 S3 client of the server at `endpoint` (boto3 imported only here)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"],
        region_name=KEYS["AWS_DEFAULT_REGION"],
    )


@contextmanager
def moto_server(workdir: Path, bucket: str) -> Iterator[str]:
    """Run moto's S3 server with one empty `bucket`; yield its endpoint; stop it by PID after."""
    port = free_port()
    argv = [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)]
    server = Process("moto", argv, {"PATH": "/usr/bin:/bin"}, workdir / "moto.log")
    server.start()
    try:
        wait_until(lambda: port_open("127.0.0.1", port), 30, what="moto's S3 server")
        endpoint = f"http://127.0.0.1:{port}"
        client(endpoint).create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()
