"""Where training logs: the MLflow experiment, created on first use."""

import mlflow


def experiment(name: str, artifact_location: str | None) -> str:
    """Return the id of experiment `name`, created with `artifact_location` if it is new."""
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    return str(mlflow.create_experiment(name, artifact_location=artifact_location))
