"""Run the whole system on one machine: Pub/Sub emulator, MLflow model, both services."""
