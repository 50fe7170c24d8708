"""Writes notebooks/scaling_laws.ipynb (kept as code so its cells stay reviewable)."""

from pathlib import Path

import nbformat as nbf

cells = [
    nbf.v4.new_markdown_cell(
        "# Scaling laws from a TinyGPT sweep\n\n"
        "Loads the runs of the latest sweep from an MLflow store, fits the laws with "
        "`tinygpt.scaling` and shows the table and the figures. Run a sweep first, e.g. "
        "`tinygpt -m experiment=scaling`; point `TINYGPT_STORE` at another store if needed."
    ),
    nbf.v4.new_code_cell(
        "import os\n"
        "from pathlib import Path\n\n"
        "from IPython.display import Image, display\n\n"
        "from tinygpt.scaling.settings import FitSettings\n"
        "from tinygpt.scaling.study import analyze\n"
        "from tinygpt.scaling.table.runs import from_mlflow\n"
        "from tinygpt.scaling.views.files import write\n\n"
        'STORE = os.environ.get("TINYGPT_STORE", "sqlite:///mlflow.db")\n'
        'OUT = Path(os.environ.get("TINYGPT_NOTEBOOK_OUT", "analysis-notebook"))'
    ),
    nbf.v4.new_code_cell(
        'table = from_mlflow(uri=STORE, experiment="tinygpt")\n'
        'print(table.attrs["source"])\n'
        'table[["N", "D", "C", "loss", "seed"]].sort_values("N")'
    ),
    nbf.v4.new_code_cell("result = analyze(table, FitSettings(bootstrap=200))\nresult.aggregated"),
    nbf.v4.new_code_cell(
        "for name, law in result.laws.items():\n"
        '    print(f"{name:12s} {law.formula()}   R²(log) = {law.r2:.4f}")\n'
        "    for warning in law.warnings:\n"
        '        print("   warning:", warning)'
    ),
    nbf.v4.new_code_cell(
        "paths = write(result, OUT)\n"
        "for p in paths:\n"
        '    if p.suffix == ".png":\n'
        "        display(Image(filename=str(p)))"
    ),
]
nb = nbf.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
path = Path(__file__).resolve().parents[1] / "notebooks" / "scaling_laws.ipynb"
nbf.write(nb, path)
print(path)
