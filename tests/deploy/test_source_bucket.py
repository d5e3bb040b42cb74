"""The bucket `gcloud builds submit` stages the source in, which setup creates and lets the
deployer read: deploy/config.sh must name it as gcloud does, domain-scoped project ids included.
"""

import http.server
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kit.deploy_scripts import ROOT, config_defaults, free_port, offline_env

# gcloud's rule: googlecloudsdk/command_lib/builds/staging_bucket_util.py, GetDefaultStagingBucket.
PROJECTS = {
    "ride-demo-123": "gs://ride-demo-123_cloudbuild",
    "example.com:rides": "gs://example_com_rides_cloudbuild",
    "google.com:ride-lab": "gs://elgoog_com_ride-lab_cloudbuild",
    "my-google-project": "gs://my-elgoog-project_cloudbuild",
}


@pytest.mark.parametrize(("project", "bucket"), PROJECTS.items())
def test_bucket_follows_gclouds_rule(project: str, bucket: str) -> None:
    assert config_defaults(PROJECT_ID=project)["BUILD_SOURCE_BUCKET"] == bucket


class _Forbidden(http.server.BaseHTTPRequestHandler):
    """A Cloud Storage stand-in that refuses every request, as for a caller without access."""

    def do_GET(self) -> None:
        body = b'{"error": {"code": 403, "message": "forbidden"}}'
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def storage() -> Iterator[str]:
    """The stand-in's address; it lives for one test."""
    server = http.server.HTTPServer(("127.0.0.1", free_port()), _Forbidden)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/storage/v1/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
@pytest.mark.parametrize("project", ["example.com:rides", "my-google-project"])
def test_bucket_is_the_one_gcloud_stages_into(
    gcloud: str, gcloud_config: Path, storage: str, tmp_path: Path, project: str
) -> None:
    # gcloud asks Cloud Storage for its default bucket before it uploads; the stand-in refuses,
    # and gcloud names the bucket in its error.
    (tmp_path / "source").mkdir()
    env = offline_env(
        gcloud_config,
        CLOUDSDK_CORE_PROJECT=project,
        CLOUDSDK_AUTH_DISABLE_CREDENTIALS="true",
        CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE=storage,
    )

    done = subprocess.run(
        [gcloud, "builds", "submit", f"--config={ROOT / 'cloudbuild.yaml'}", "source"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    named = re.search(r"forbidden from accessing the bucket \[([^\]]+)\]", done.stderr)
    assert named is not None, done.stderr
    assert f"gs://{named[1]}" == config_defaults(PROJECT_ID=project)["BUILD_SOURCE_BUCKET"]
