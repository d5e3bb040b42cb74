"""predictor_service.model: a model folder that cannot be loaded is refused."""

import pytest

from predictor_service.fetch import pin
from predictor_service.model import ModelLoadError, load_model


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


@pytest.mark.slow
def test_a_model_the_registry_does_not_have_is_refused_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")

    with pytest.raises(ModelLoadError, match="cannot download model 'models:/absent@production'"):
        load_model("models:/absent@production")
