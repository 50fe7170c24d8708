"""How a table of runs lies on the (N, D) plane: which rows a one-variable law is read along."""

from __future__ import annotations

import numpy as np
import pandas as pd


def at_max(table: pd.DataFrame, col: str) -> pd.Series:
    return pd.Series(np.isclose(table[col], table[col].max(), rtol=1e-2), index=table.index)


def along(table: pd.DataFrame, x: str) -> pd.DataFrame:
    """The rows a one-variable law L(x) is read from.

    On an (N, D) grid (several budgets reached by at least 3 sizes, or several sizes at 3
    budgets), L(D) is read along the largest model and every other law along the largest
    budget; any other table is used whole.
    """
    other = "N" if x == "D" else "D"
    if table[other].nunique() < 2:
        return table
    top = table[at_max(table, other)]
    return top if top[x].nunique() >= 3 else table
