"""The columns of a table of runs, and the MLflow metrics they are read from (one list for the
sources that fill them and the views that read them), and reading a CSV of them."""

from pathlib import Path

import pandas as pd

from tinygpt.errors import TinyGPTError

# A pre-training run's row: column -> the metric its job logged (tinygpt/train/job.py).
SCALING_METRICS = {
    "N": "non_embedding_parameters",  # source.parameters picks (accounting.PARAMETER_METRICS)
    "D": "tokens_seen",
    "C": "flops",  # Kaplan's; source.flops picks another (tinygpt.accounting.FLOP_METRICS)
    "loss": "final_val_loss",
    "bpb": "final_val_bpb",  # bits per byte, for fit.metric=val_bpb
    "C_budget": "compute_budget",  # the compute an IsoFLOP job aimed at
}
# An adaptation (seal) run's row: these metrics under their own names (tinygpt/seal/adapt.py).
ADAPTATION_METRICS = (
    "improvement",
    "forgetting",
    "update_tokens",
    "edit_tokens",
    "trainable_parameters",
)
# Every row also has these; any other column is a setting that varied across the runs.
IDENTITY = ("run_id", "seed")

SCALING_COLUMNS = (*IDENTITY, *SCALING_METRICS)
ADAPTATION_COLUMNS = (*IDENTITY, *ADAPTATION_METRICS)


def read_table(path: Path, needs: str) -> pd.DataFrame:
    """A CSV as a DataFrame; an empty file or one pandas cannot parse is one line naming it."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise TinyGPTError(
            f"source.path: {path} is empty: it needs a header row ({needs}) and a row per run"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        why = str(e).splitlines()[0]
        raise TinyGPTError(f"source.path: {path} is not a readable CSV ({why})") from None
