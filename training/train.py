"""Train the ride-duration models, log them to MLflow and register the accurate one.

python -m training.train [--coarse-out backend_service/coarse_model.json]
"""

import argparse
import hashlib
import logging
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import mlflow
from mlflow import MlflowClient

from predictor_service.features import (
    CATEGORICAL_FEATURES,
    MODEL_FEATURE_NAMES,
    PAIR_TABLE_FILE,
    add_pair_features,
)

from .coarse import fit_coarse, predict_many
from .data import features, rmse
from .pairs import fit_pair_table, out_of_fold_features
from .tracking import arguments, experiment, prepare

log = logging.getLogger("training")

# The course's baseline on this split: LinearRegression on PU_DO + trip_distance.
COURSE_BASELINE_RMSE = 7.76
PARAMS = {
    "objective": "regression",
    "learning_rate": 0.05,
    "num_leaves": 63,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.9,
    # Reproducible: the same data gives the same trees, so a retrain is comparable.
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "seed": 42,
    "verbose": -1,
}
# With the pair columns the validation error bottoms out near 380 rounds; fewer trees also
# mean a smaller artifact and a faster prediction.
NUM_BOOST_ROUND = 400
PROGRESS_EVERY = 100


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = arguments(
        __doc__.splitlines()[0], experiment="ride-duration", model_name="ride-duration"
    )
    parser.add_argument("--num-boost-round", type=int, default=NUM_BOOST_ROUND)
    parser.add_argument(
        "--coarse-out", type=Path, help="also write the coarse estimator here for the backend"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, float | str]:
    """Train, evaluate on the validation month, log, register; return the figures."""
    args = parse_args(argv)
    train, valid = prepare(args)
    log.info(
        "loaded %d training rides (%s), %d validation rides (%s)",
        len(train),
        args.train.name,
        len(valid),
        args.valid.name,
    )
    pairs = fit_pair_table(train)
    x_train = out_of_fold_features(train, features(train))
    x_valid = add_pair_features(features(valid), pairs)
    experiment_id = experiment(args.experiment, args.artifact_location)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        booster = _fit_booster(x_train, train.duration.to_numpy(), args.num_boost_round)
        valid_rmse = rmse(booster.predict(x_valid), valid.duration)
        coarse = fit_coarse(train, version="pending")
        coarse_json = coarse.to_json()
        coarse = type(coarse)(**{**vars(coarse), "version": _digest(coarse_json)})
        coarse_rmse = rmse(predict_many(coarse, valid), valid.duration)
        mlflow.log_params(
            PARAMS
            | {
                "num_boost_round": args.num_boost_round,
                "features": ",".join(MODEL_FEATURE_NAMES),
                "train_rows": len(train),
                "train_file": args.train.name,
            }
        )
        mlflow.log_metrics({"valid_rmse": valid_rmse, "coarse_valid_rmse": coarse_rmse})
        mlflow.log_text(coarse.to_json(), "coarse_model.json")
        log.info("logging the model to %s", mlflow.get_artifact_uri())
        with tempfile.TemporaryDirectory() as scratch:
            table = Path(scratch) / PAIR_TABLE_FILE
            table.write_text(pairs.to_json())
            # The predictor reads it from the model folder's extra_files/.
            info = mlflow.lightgbm.log_model(
                booster,
                name="model",
                registered_model_name=args.model_name,
                extra_files=[str(table)],
            )
    version = str(info.registered_model_version)
    MlflowClient().set_registered_model_alias(args.model_name, args.alias, version)
    if args.coarse_out:
        args.coarse_out.write_text(coarse.to_json())
        log.info("wrote the coarse estimator to %s", args.coarse_out)
    log.info(
        "validation RMSE on %s, minutes: accurate %.3f, coarse %.3f, course baseline %.2f",
        args.valid.name,
        valid_rmse,
        coarse_rmse,
        COURSE_BASELINE_RMSE,
    )
    log.info(
        "registered models:/%s/%s as models:/%s@%s (run %s)",
        args.model_name,
        version,
        args.model_name,
        args.alias,
        run.info.run_id,
    )
    return {
        "valid_rmse": valid_rmse,
        "coarse_valid_rmse": coarse_rmse,
        "run_id": run.info.run_id,
        "model_version": version,
    }


def _fit_booster(x, y, rounds: int) -> lgb.Booster:  # type: ignore[no-untyped-def]
    names = list(MODEL_FEATURE_NAMES)
    categorical = [names.index(name) for name in CATEGORICAL_FEATURES]
    dataset = lgb.Dataset(x, y, feature_name=names, categorical_feature=categorical)
    started = time.monotonic()

    def progress(env: lgb.callback.CallbackEnv) -> None:
        done = env.iteration + 1
        if done % PROGRESS_EVERY == 0 or done == rounds:
            log.info("boosting round %d/%d (%.1f s)", done, rounds, time.monotonic() - started)

    return lgb.train(PARAMS, dataset, num_boost_round=rounds, callbacks=[progress])


def _digest(text: str) -> str:
    return "coarse-" + hashlib.sha256(text.encode()).hexdigest()[:12]


if __name__ == "__main__":
    main()
