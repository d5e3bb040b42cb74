"""The C-API booster against lightgbm's own Python API, on the same model file."""

import lightgbm
import numpy as np
import pytest

from predictor_service.native import NativeBooster


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    features = np.column_stack([rng.integers(1, 266, 2000), rng.integers(1, 266, 2000),
                                rng.uniform(0, 20, 2000), rng.uniform(0, 24, 2000)])  # fmt: skip
    target = 3 + features[:, 2] * 3 + (features[:, 0] % 7)
    dataset = lightgbm.Dataset(features, target, categorical_feature=[0, 1])
    booster = lightgbm.train({"verbose": -1, "num_leaves": 15}, dataset, num_boost_round=30)
    path = tmp_path_factory.mktemp("model") / "model.lgb"
    booster.save_model(str(path))
    return path, features


def test_predictions_equal_lightgbm_one_row_and_many(model_file):
    path, features = model_file
    reference = lightgbm.Booster(model_file=str(path)).predict(features)
    native = NativeBooster(path)

    assert native.num_features == 4
    assert native.predict(features).tolist() == reference.tolist()
    assert [native.predict(row[None, :])[0] for row in features[:50]] == reference[:50].tolist()


def test_wrong_number_of_features_is_refused(model_file):
    with pytest.raises(ValueError, match="4 features"):
        NativeBooster(model_file[0]).predict(np.zeros((1, 5)))


def test_an_unreadable_model_file_raises(tmp_path):
    broken = tmp_path / "model.lgb"
    broken.write_text("not a model")

    with pytest.raises(RuntimeError):
        NativeBooster(broken)
