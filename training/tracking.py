"""Where training logs: the command-line options both trainers take, and the experiment."""

import argparse
import logging
import os
from pathlib import Path

import mlflow
import pandas as pd

from .data import TRAIN_FILE, VALID_FILE, load_trips


def arguments(description: str, experiment: str, model_name: str) -> argparse.ArgumentParser:
    """Return a parser of the data, tracking and registry options every trainer takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--train", type=Path, default=TRAIN_FILE)
    parser.add_argument("--valid", type=Path, default=VALID_FILE)
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    parser.add_argument("--experiment", default=experiment)
    parser.add_argument(
        "--artifact-location",
        default=os.environ.get("MLFLOW_ARTIFACT_LOCATION"),
        help="artifact root of a new experiment, e.g. s3://bucket/path (default: MLflow's)",
    )
    parser.add_argument("--model-name", default=model_name)
    parser.add_argument("--alias", default="production")
    return parser


def experiment(name: str, artifact_location: str | None) -> str:
    """Return the id of experiment `name`, created with `artifact_location` if it is new."""
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    return str(mlflow.create_experiment(name, artifact_location=artifact_location))


def prepare(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Set up logging and the tracking server from `args`; return training and validation trips."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%X")
    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
    return load_trips(args.train), load_trips(args.valid)
