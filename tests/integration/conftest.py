"""Fixtures of the integration tests: moto's S3 server, shared by the modules that need S3."""

from collections.abc import Iterator

import pytest

from tests.kit.s3 import moto_s3


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run moto's S3 server on a loopback port with one empty bucket."""
    with moto_s3(tmp_path_factory.mktemp("moto")) as endpoint:
        yield endpoint
