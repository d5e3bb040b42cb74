"""Log the course's baseline model, as a user of the course has it, so the predictor can serve it.

A scikit-learn pipeline of DictVectorizer and LinearRegression on the course's features
(`{"PU_DO": "43_151", "trip_distance": 1.8}`), trained on the same month as the project's model,
logged with mlflow.sklearn and a signature, registered with an alias.

python -m training.course [--model-name ride-duration-course] [--alias production]
"""

import argparse
import logging
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline, make_pipeline

from .data import rmse
from .tracking import arguments, experiment, prepare

log = logging.getLogger("training")
# skops stores the estimators' state without pickle, so loading runs no code from the artifact;
# MLflow 3 accepts it for this pipeline (it refuses it for some other estimators).
SERIALIZATION_FORMAT = "skops"


def course_dicts(trips: pd.DataFrame) -> list[dict[str, Any]]:
    """The course's features: the zone pair as one string, and the distance."""
    pairs = trips.PULocationID.astype(str) + "_" + trips.DOLocationID.astype(str)
    return [
        {"PU_DO": pair, "trip_distance": float(miles)}
        for pair, miles in zip(pairs, trips.trip_distance, strict=True)
    ]


def fit(trips: pd.DataFrame) -> Pipeline:
    """Fit the course's pipeline on `trips` (with a `duration` column in minutes)."""
    pipeline = make_pipeline(DictVectorizer(), LinearRegression())
    return pipeline.fit(course_dicts(trips), trips.duration.to_numpy())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = arguments(
        __doc__.splitlines()[0],
        experiment="ride-duration-course",
        model_name="ride-duration-course",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, float | str]:
    """Train, evaluate on the validation month, log and register; return the figures."""
    args = parse_args(argv)
    train, valid = prepare(args)
    with mlflow.start_run(experiment_id=experiment(args.experiment, args.artifact_location)) as run:
        pipeline = fit(train)
        valid_rmse = rmse(pipeline.predict(course_dicts(valid)), valid.duration)
        example = course_dicts(valid.head(5))
        mlflow.log_params({"model": "DictVectorizer+LinearRegression", "train_rows": len(train)})
        mlflow.log_metric("valid_rmse", valid_rmse)
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(example, pipeline.predict(example)),
            serialization_format=SERIALIZATION_FORMAT,
            registered_model_name=args.model_name,
        )
    version = str(info.registered_model_version)
    MlflowClient().set_registered_model_alias(args.model_name, args.alias, version)
    log.info("validation RMSE on %s: %.3f minutes", args.valid.name, valid_rmse)
    log.info(
        "registered models:/%s/%s as models:/%s@%s; serve it with "
        "MODEL_URI=models:/%s@%s make run, or RUN_ID=%s",
        args.model_name, version, args.model_name, args.alias, args.model_name, args.alias,
        run.info.run_id,
    )  # fmt: skip
    return {"valid_rmse": valid_rmse, "run_id": run.info.run_id, "model_version": version}


if __name__ == "__main__":
    main()
