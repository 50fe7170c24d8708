"""Write tests/fixtures/curves_mpl/ from ../shared/scaling-data/multipowerlaw/.

The published curves (Luo et al. 2025, thu-yao-01-luo/MultiPowerLaw, loss_curve_repo/ at
8da9f19) list the LR and loss every 128 steps from the end of the warmup. `source=curves` reads
the LR as linear between rows and from 0 at step 0, so the rows added here (loss empty) put the
schedules' corners where the repository's own schedule code has them: the warmup's end (a linear
ramp over steps 0-2159), the two-stage drop at step 8000 and the WSD decay's start at 20000.
Usage: python scripts/mpl_fixtures.py [../shared/scaling-data/multipowerlaw]
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

PEAK, WARMUP = 3e-4, 2160


def corners(name: str) -> list[tuple[int, float]]:
    rows = [(WARMUP - 1, PEAK)]
    if name.startswith("wsdcon_"):
        rows += [(7999, PEAK), (8000, int(name.split("_")[1]) * 1e-5)]
    elif name.startswith("wsd"):
        rows += [(20000, PEAK)]
    return rows


def main() -> None:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/scaling-data/multipowerlaw")
    out = Path(__file__).resolve().parents[1] / "tests/fixtures/curves_mpl"
    for size in ("25", "100"):
        (out / size).mkdir(parents=True, exist_ok=True)
        for f in sorted((src / f"csv_{size}").glob("*.csv")):
            df = pd.read_csv(f)
            extra = pd.DataFrame(corners(f.stem), columns=["step", "lr"])
            extra = extra[~extra["step"].isin(df["step"])]
            df = pd.concat([df, extra]).sort_values("step", kind="stable")
            df.to_csv(out / size / f.name, index=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
