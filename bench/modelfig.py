"""The model's own figures: validation RMSE, single-ride prediction time, artifact size."""

import statistics
import time
from datetime import datetime
from typing import Any

from .figures import Figure
from .setup import BenchModel

ITERATIONS = 3000


def _median_us(call, iterations: int = ITERATIONS) -> float:  # type: ignore[no-untyped-def]
    for _ in range(100):
        call()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - started)
    return statistics.median(samples) / 1000


def timings(model: BenchModel, ride: dict[str, Any]) -> dict[str, float]:
    """Median microseconds of one ride's features, prediction, and both, in this process."""
    from predictor_service.features import prepare_features
    from predictor_service.model import load_model

    loaded = load_model(str(model.folder))
    when = datetime.fromisoformat(ride["datetime"])
    args = ([ride["PULocationID"]], [ride["DOLocationID"]], [ride["trip_distance"]], [when])
    features = prepare_features(*args)
    found = {
        "features_us": _median_us(lambda: prepare_features(*args)),
        "predict_us": _median_us(lambda: loaded.predict(features)),
        "features_and_predict_us": _median_us(lambda: loaded.predict(prepare_features(*args))),
    }
    # The same trees through lightgbm's Python API, which the predictor no longer uses.
    import lightgbm
    import numpy as np

    booster = lightgbm.Booster(model_file=str(model.folder / "model.lgb"))
    full = features
    if loaded.pairs is not None:
        from predictor_service.features import add_pair_features

        full = add_pair_features(features, loaded.pairs)
    found["lightgbm_python_predict_us"] = _median_us(
        lambda: booster.predict(full, num_threads=1), iterations=500
    )
    assert np.allclose(booster.predict(full), loaded.booster.predict(full))
    return found


def sizes(model: BenchModel) -> dict[str, float]:
    """Sizes in MB of the model folder and its parts."""
    files = {
        p.relative_to(model.folder).as_posix(): p.stat().st_size
        for p in model.folder.rglob("*")
        if p.is_file()
    }
    return {"total_mb": sum(files.values()) / 1e6} | {f"{k}_mb": v / 1e6 for k, v in files.items()}


def figures(model: BenchModel, ride: dict[str, Any]) -> list[Figure]:
    """RMSE, prediction time and size figures of the bench's model."""
    rmse = model.metrics.get("valid_rmse", float("nan"))
    coarse = model.metrics.get("coarse_valid_rmse", float("nan"))
    times = timings(model, ride)
    size = sizes(model)
    return [
        Figure(
            "model_rmse", "Model: validation RMSE (2021-02)",
            f"LightGBM, {model.params.get('num_boost_round')} rounds, features "
            f"{model.params.get('features')}; trained on 2021-01 ({model.params.get('train_rows')} "
            f"rides); metric logged by training.train ({model.version})",
            f"accurate {rmse:.3f} min, coarse {coarse:.3f} min", "accurate <= 5.3, coarse <= 7.76",
            rmse <= 5.3 and coarse <= 7.76, {"valid_rmse": rmse, "coarse_valid_rmse": coarse},
        ),
        Figure(
            "model_predict", "Model: one ride inside the service (features + booster)",
            f"median of {ITERATIONS} calls in one process, LoadedModel.predict(prepare_features())"
            " as the push route calls it; lightgbm's Python Booster.predict for comparison",
            f"{times['features_and_predict_us']:.0f} us (features {times['features_us']:.0f} us, "
            f"predict {times['predict_us']:.0f} us; lightgbm Python API "
            f"{times['lightgbm_python_predict_us']:.0f} us)",
            "< 300 us", times["features_and_predict_us"] < 300, times,
        ),
        Figure(
            "model_size", "Model: artifact size", "the MLflow model folder the predictor loads",
            f"{size['total_mb']:.1f} MB (booster {size.get('model.lgb_mb', 0):.1f} MB, pair table "
            f"{size.get('extra_files/pair_table.json_mb', 0):.2f} MB)",
            "small enough not to hurt cold start", None, size,
        ),
    ]  # fmt: skip
