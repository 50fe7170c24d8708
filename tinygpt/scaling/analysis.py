"""What a scaling analysis found: the table, its laws, the holdout checks, the IsoFLOP and
envelope views. ``report.analyze`` fills it; ``plots`` and ``report.write`` read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tinygpt.scaling.envelope import Envelope
from tinygpt.scaling.holdout import Holdout
from tinygpt.scaling.isoflop import IsoflopView
from tinygpt.scaling.laws import Law


@dataclass
class Analysis:
    table: pd.DataFrame
    aggregated: pd.DataFrame
    laws: dict[str, Law] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    holdouts: dict[str, Holdout] = field(default_factory=dict)
    isoflop: IsoflopView | None = None
    envelope: Envelope | None = None

    @property
    def holdout(self) -> Holdout | None:
        """The headline check: L(N, D) where it was fitted, else L(N)."""
        return self.holdouts.get("L(N, D)") or self.holdouts.get("L(N)")

    def to_dict(self) -> dict[str, Any]:
        out = {
            "n_runs": len(self.table),
            "source": self.table.attrs.get("source"),
            "laws": {name: law.to_dict() for name, law in self.laws.items()},
            "skipped": self.skipped,
        }
        if self.isoflop is not None:
            out["isoflop"] = self.isoflop.to_dict()
        if self.envelope is not None:
            out["envelope"] = self.envelope.to_dict()
        if self.holdout is not None:
            out["holdout"] = self.holdout.to_dict()
            out["holdouts"] = {name: h.to_dict() for name, h in self.holdouts.items()}
        return out
