"""The curves view of ``tinygpt-analyze``: fit whole-curve laws on some runs, predict the rest.

Runs of different model sizes are fitted separately (one law per size and law form): the curve
laws have no term in N.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tinygpt.errors import TinyGPTError
from tinygpt.scaling.curves.laws import LAWS, Curve, CurveLaw, fit_curves, score
from tinygpt.scaling.settings import CurveFitConfig


def _by_size(curves: list[Curve]) -> dict[float | None, list[Curve]]:
    groups: dict[float | None, list[Curve]] = {}
    for c in curves:
        groups.setdefault(c.N, []).append(c)
    return groups


def resolve_fit_on(curves: list[Curve], fit_on: list[str], ids: dict[str, str]) -> set[str]:
    """The curve names ``fit_on`` picks (by name or run id); one clear line for a bad name."""
    names = {c.name for c in curves}
    if not fit_on:
        raise TinyGPTError(
            "fit.curves.fit_on is empty: name the runs to fit, e.g. "
            f"fit.curves.fit_on=[{','.join(sorted(names)[:2])}]; the runs are "
            + ", ".join(sorted(names))
        )
    by_id = {v: k for k, v in ids.items()}
    chosen = set()
    for name in fit_on:
        if name in names:
            chosen.add(name)
        elif name in by_id:
            chosen.add(by_id[name])
        else:
            raise TinyGPTError(
                f"fit.curves.fit_on names {name!r}, which is not a run here: choose from "
                + ", ".join(sorted(names))
            )
    return chosen


def analyze_curves(
    curves: list[Curve], settings: CurveFitConfig, ids: dict[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, dict[float | None, CurveLaw]]]:
    """Fit every law on the chosen runs of each size; score every run. (report, fitted laws)"""
    for law in settings.laws:
        if law not in LAWS:
            raise TinyGPTError(
                f"fit.curves.laws: unknown law {law!r}: choose from {', '.join(LAWS)}"
            )
    chosen = resolve_fit_on(curves, list(settings.fit_on), ids or {})
    curves = [
        Curve(c.name, c.lr, *_after(c, settings.from_step), c.N) for c in curves
    ]  # fmt: skip
    groups = _by_size(curves)
    report: dict[str, Any] = {"fit_on": sorted(chosen), "laws": {}}
    fitted: dict[str, dict[float | None, CurveLaw]] = {}
    for law_name in settings.laws:
        fits, runs = [], {}
        fitted[law_name] = {}
        for size, group in groups.items():
            train = [c for c in group if c.name in chosen]
            if not train:
                raise TinyGPTError(
                    f"fit.curves.fit_on picks no run of size N = {size}: "
                    f"add one of {', '.join(c.name for c in group)} (each size is fitted alone)"
                )
            law = fit_curves(
                train,
                law_name,
                settings.optimizer,
                settings.bootstrap,
                seed=0,
                block=settings.block,
            )
            fitted[law_name][size] = law
            fits.append(
                {
                    "N": size,
                    "formula": law.formula(),
                    "params": law.params,
                    "fitted_on": law.fitted_on,
                    "objective": law.objective,
                    "optimizer": law.optimizer if law_name == "mpl" else "lbfgs",
                    "iterations": law.iterations,
                    "fit_seconds": law.seconds,
                    "bootstrap": len(law.boot),
                    "bootstrap_seconds": law.boot_seconds,
                }
            )
            for c in group:
                runs[c.name] = {"N": size, "fitted": c.name in chosen, **score(law, c)}
        predicted = [r for r in runs.values() if not r["fitted"]]
        summary: dict[str, Any] = {"fits": fits, "runs": runs}
        if predicted:
            summary |= {
                "predicted_runs": len(predicted),
                "mean_relative_error": float(
                    np.mean([r["mean_relative_error"] for r in predicted])
                ),
                "max_relative_error": float(max(r["max_relative_error"] for r in predicted)),
                # The MultiPowerLaw repository's "WorstE": each run's max, averaged over runs.
                "mean_max_relative_error": float(
                    np.mean([r["max_relative_error"] for r in predicted])
                ),
            }
            if all("inside_band" in r for r in predicted):
                summary["inside_band"] = float(
                    np.average(
                        [r["inside_band"] for r in predicted],
                        weights=[r["points"] for r in predicted],
                    )
                )
        report["laws"][law_name] = summary
    return report, fitted


def _after(c: Curve, step: int) -> tuple[np.ndarray, np.ndarray]:
    keep = c.steps > step
    return c.steps[keep], c.loss[keep]


def text(report: dict[str, Any]) -> str:
    """The printed report: per law its fits, a row per run, the errors over predicted runs."""
    lines = [f"  curves fitted on {', '.join(report['fit_on'])}; every other run is predicted"]
    for law_name, s in report["laws"].items():
        for f in s["fits"]:
            size = "" if f["N"] is None else f" (N = {f['N']:,.0f})"
            lines.append(f"  {law_name}{size}: {f['formula']}")
            lines.append(
                f"    fitted in {f['fit_seconds']:.1f} s ({f['optimizer']}); bands from "
                f"{f['bootstrap']} bootstrap refits in {f['bootstrap_seconds']:.1f} s"
            )
        lines.append(
            f"    {'run':28} {'final':>8} {'mean':>8} {'max':>8}  in band   (relative errors)"
        )
        for name, r in s["runs"].items():
            band = f"{r['inside_band']:7.0%}" if "inside_band" in r else "      -"
            mark = " (fitted)" if r["fitted"] else ""
            lines.append(
                f"    {(name + mark)[:28]:28} {r['final_relative_error']:+8.2%} "
                f"{r['mean_relative_error']:8.2%} {r['max_relative_error']:8.2%}  {band}"
            )
        if "predicted_runs" in s:
            band = (
                f"; {s['inside_band']:.0%} of their points inside the 95% band"
                if "inside_band" in s
                else ""
            )
            lines.append(
                f"    over {s['predicted_runs']} predicted runs: "
                f"mean {s['mean_relative_error']:.3%}, max {s['max_relative_error']:.3%} "
                "(each run's max averaged: "
                f"{s['mean_max_relative_error']:.3%}){band}"
            )
    return "\n".join(lines)


def write(
    report: dict[str, Any],
    fitted: dict[str, dict[float | None, CurveLaw]],
    curves: list[Curve],
    out: Path,
    plots: bool = True,
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "fit.json"]
    paths[0].write_text(json.dumps({"curves": report}, indent=2, default=float))
    if plots:
        from tinygpt.scaling.curves.figure import curves_figure

        for law_name, by_size in fitted.items():
            path = out / f"curves_{law_name}.png"
            curves_figure(curves, by_size, set(report["fit_on"]), law_name, path)
            paths.append(path)
    return paths
