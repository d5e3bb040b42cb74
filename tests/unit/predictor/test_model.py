"""predictor_service.model: a model folder that cannot be loaded is refused."""

import pytest
import yaml

from predictor_service.fetch import pin
from predictor_service.model import ModelLoadError, load_model
from tests.kit import models


@pytest.fixture
def booster_folder(tmp_path):
    models.save_native_booster(tmp_path / "native")
    return tmp_path / "native"


def test_missing_model_folder_is_a_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="MLmodel"):
        load_model(str(tmp_path))


def test_model_of_another_flavor_without_signature_needs_model_input(tmp_path):
    (tmp_path / "MLmodel").write_text("flavors:\n  sklearn: {}\n")

    with pytest.raises(ModelLoadError, match="no signature, and MODEL_INPUT is unset"):
        load_model(str(tmp_path))


@pytest.mark.parametrize(
    ("uri", "version"),
    [
        ("models:/ride-duration/7", "ride-duration/7"),
        ("runs:/0123abcd/model", "run:0123abcd"),
        ("s3://bucket/1/models/m-1/artifacts", None),
    ],
)
def test_a_uri_names_its_version_before_anything_is_downloaded(uri, version):
    assert pin(uri) == (uri, version)


@pytest.mark.parametrize(
    ("uri", "pinned"),
    [("models:/ride-duration/3", "ride-duration/2"), ("runs:/0123abcd/model", "ride-duration/2")],
)
def test_a_uri_naming_another_version_than_the_pin_is_refused_before_any_download(uri, pinned):
    with pytest.raises(ModelLoadError, match=f"MODEL_VERSION={pinned}: refusing"):
        load_model(uri, pinned_version=pinned)


def test_a_gs_folder_is_refused_saying_what_to_deploy_instead():
    with pytest.raises(ModelLoadError, match="gs:// folders are not read by the predictor"):
        load_model("gs://bucket/1/models/m-1/artifacts")


def test_a_folder_is_served_as_the_version_the_revision_was_made_with(booster_folder):
    assert load_model(str(booster_folder), pinned_version="ride-duration/7").version == (
        "ride-duration/7"
    )


def test_a_folder_logged_by_another_run_than_the_pinned_one_is_refused(booster_folder):
    mlmodel = booster_folder / "MLmodel"
    mlmodel.write_text(yaml.safe_dump(yaml.safe_load(mlmodel.read_text()) | {"run_id": "0123abcd"}))

    assert load_model(str(booster_folder), pinned_version="run:0123abcd").version == "run:0123abcd"
    with pytest.raises(ModelLoadError, match="holds the model of run 0123abcd"):
        load_model(str(booster_folder), pinned_version="run:feedbeef")


@pytest.mark.slow
def test_a_model_the_registry_does_not_have_is_refused_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")

    with pytest.raises(ModelLoadError, match="cannot download model 'models:/absent@production'"):
        load_model("models:/absent@production")
