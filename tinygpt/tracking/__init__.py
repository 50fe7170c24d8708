"""MLflow: run lifecycle, batched metrics, system tags."""
