"""predictor_service.model with small real MLflow models: each kind is fed, checked, or refused."""

from datetime import UTC, datetime

import numpy as np
import pytest

from predictor_service.model import LoadedModel, ModelLoadError, load_model
from predictor_service.pyfunc import PyfuncModel
from tests.kit import models

WHEN = datetime(2021, 2, 3, 13, 30, tzinfo=UTC)  # 08:30 in New York


def test_course_pipeline_gets_the_course_inputs(tmp_path):
    pipeline = models.save_course_pipeline(tmp_path / "course")

    loaded = load_model(str(tmp_path / "course"))

    assert isinstance(loaded, PyfuncModel) and loaded.adapter.kind == "course"
    expected = pipeline.predict([{"PU_DO": "74_75", "trip_distance": 2.5}])[0]
    assert loaded.duration(74, 75, 2.5, WHEN) == round(float(expected), 2)


def test_course_pipeline_without_signature_is_fed_as_model_input_says(tmp_path):
    pipeline = models.save_course_pipeline(tmp_path / "course", signature=False)

    loaded = load_model(str(tmp_path / "course"), model_input="course")

    expected = pipeline.predict([{"PU_DO": "10_20", "trip_distance": 4.0}])[0]
    assert loaded.duration(10, 20, 4.0, WHEN) == round(float(expected), 2)


def test_lgbm_regressor_goes_through_pyfunc_with_its_signature(tmp_path):
    regressor = models.save_lgbm_regressor(tmp_path / "lgbm")

    loaded = load_model(str(tmp_path / "lgbm"))

    assert isinstance(loaded, PyfuncModel)
    assert [name for name, _ in loaded.adapter.columns] == [
        "PULocationID", "DOLocationID", "trip_distance",
    ]  # fmt: skip
    row = models.ride_frame().head(1).assign(PULocationID=74, DOLocationID=75, trip_distance=2.5)
    assert loaded.duration(74, 75, 2.5, WHEN) == round(float(regressor.predict(row)[0]), 2)


def test_raw_ride_signature_gets_the_pickup_time_in_new_york(tmp_path):
    models.save_pyfunc(tmp_path / "ride", models.ride_minutes(), models.RIDE_SIGNATURE)

    loaded = load_model(str(tmp_path / "ride"))

    assert loaded.duration(74, 75, 2.5, WHEN) == round(2 + 3 * 2.5 + 8 / 10, 2)


def test_feature_columns_without_signature(tmp_path):
    regression = models.save_features_regression(tmp_path / "features")

    loaded = load_model(str(tmp_path / "features"), model_input="features")

    # 08:30 on a Wednesday: hour 8.5, day 2
    features = np.array([[74.0, 75.0, 2.5, 8.5, 2.0]])
    import pandas as pd

    frame = pd.DataFrame(features, columns=models.FEATURE_NAMES)
    assert loaded.duration(74, 75, 2.5, WHEN) == round(float(regression.predict(frame)[0]), 2)


def test_model_without_signature_or_setting_is_refused_naming_the_kinds(tmp_path):
    models.save_features_regression(tmp_path / "features")

    with pytest.raises(ModelLoadError, match="MODEL_INPUT") as err:
        load_model(str(tmp_path / "features"))

    assert "course (PU_DO, trip_distance)" in str(err.value)


def test_model_the_predictor_cannot_feed_is_refused_listing_both_sides(tmp_path):
    models.save_unfeedable(tmp_path / "passengers")

    with pytest.raises(ModelLoadError, match="cannot feed") as err:
        load_model(str(tmp_path / "passengers"))

    assert "passenger_count: double" in str(err.value)
    assert "PU_DO" in str(err.value) and "lpep_pickup_datetime" in str(err.value)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (np.array([1.0, 2.0]), "2 values"),
        (np.array([np.nan]), "finite"),
        (np.array(["soon"]), "a number"),
        (RuntimeError("no GPU"), "no GPU"),
    ],
)
def test_model_that_answers_wrongly_is_refused_with_the_reason(tmp_path, answer, reason):
    models.save_pyfunc(tmp_path / "broken", models.answers(answer), models.RIDE_SIGNATURE)

    with pytest.raises(ModelLoadError, match="start-up prediction") as err:
        load_model(str(tmp_path / "broken"))

    assert reason in str(err.value)


def test_the_project_booster_stays_on_the_native_path(tmp_path):
    models.save_native_booster(tmp_path / "native")

    loaded = load_model(str(tmp_path / "native"))

    assert isinstance(loaded, LoadedModel)
    assert loaded.version.startswith(("run:", "m-")) or loaded.version
