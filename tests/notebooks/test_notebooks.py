"""Every notebook in notebooks/ runs end to end through papermill on the smoke config.

Needs the smoke data in the cache (``aine fetch --config configs/smoke.yaml``,
which ``make test`` runs first). Outputs go to a temporary folder, never to
build/smoke or the committed figures/.
"""

import json

import pytest

from aine_lib.config import load_config
from aine_lib.driver import execute_notebook
from tests.conftest import REPO

NOTEBOOKS = sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))


def test_every_notebook_is_in_both_configs():
    for name in ("smoke", "paper"):
        listed = {nb.name for nb in load_config(REPO / "configs" / f"{name}.yaml").notebooks}
        assert listed == set(NOTEBOOKS), f"configs/{name}.yaml must list every notebook"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_clean(name):
    nb = json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert not any(c.get("outputs") or c.get("execution_count") for c in code), "run nbstripout"
    assert sum("parameters" in c.get("metadata", {}).get("tags", []) for c in code) == 1
    for cell in code:
        src = "".join(cell["source"])
        assert not any(line.lstrip().startswith(("def ", "class ")) for line in src.splitlines()), \
            "logic belongs in aine_lib, not in notebooks"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_on_smoke(name, tmp_path):
    overrides = {"output_dir": str(tmp_path / "out"), "executed_dir": str(tmp_path / "executed")}
    cfg = load_config(REPO / "configs" / "smoke.yaml", overrides)
    outcome = execute_notebook(cfg, name, overrides)
    assert outcome.ok, outcome.describe()
    manifests = [tmp_path / "out" / d / "manifest.json" for d in ("figures", "tables")]
    made = [json.loads(m.read_text()) for m in manifests if m.exists()]
    assert made, f"{name} wrote no figure or table"
    assert all(r["notebook"] == f"notebooks/{name}.ipynb" for m in made for r in m.values())
