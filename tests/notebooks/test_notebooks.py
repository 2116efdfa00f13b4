"""Every notebook in notebooks/ runs end to end through papermill on the smoke config.

Needs the smoke data in the cache (``aine fetch --config configs/smoke.yaml``,
which ``make test`` runs first). Outputs go to a temporary folder, never to
build/smoke or the committed figures/.
"""

import json

import pytest

from aine_lib.config import load_config
from aine_lib.study.driver import execute_notebook
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


class SmokeRun:
    """Executes each notebook once per test session (the book test reuses the executed copies)."""

    def __init__(self, root):
        self.root = root
        self.outcomes = {}

    def execute(self, name):
        if name not in self.outcomes:
            out = self.root / "out" / name
            overrides = {"output_dir": str(out), "executed_dir": str(self.root / "executed")}
            cfg = load_config(REPO / "configs" / "smoke.yaml", overrides)
            self.outcomes[name] = (execute_notebook(cfg, name, overrides), out)
        return self.outcomes[name]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    return SmokeRun(tmp_path_factory.mktemp("smoke_run"))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_on_smoke(name, smoke_run):
    outcome, out = smoke_run.execute(name)
    assert outcome.ok, outcome.describe()
    manifests = [out / d / "manifest.json" for d in ("figures", "tables")]
    made = [json.loads(m.read_text()) for m in manifests if m.exists()]
    assert made, f"{name} wrote no figure or table"
    assert all(r["notebook"] == f"notebooks/{name}.ipynb" for m in made for r in m.values())


def test_the_book_builds_and_every_page_passes_in_a_real_browser(smoke_run, tmp_path):
    """make book on the smoke run; headless Chromium opens every page (CI installs the Debian package)."""
    from aine_lib.study.book import build_book, check_book, find_chromium

    for name in NOTEBOOKS:
        outcome, _ = smoke_run.execute(name)
        assert outcome.ok, outcome.describe()
    cfg = load_config(REPO / "configs" / "smoke.yaml", {"executed_dir": str(smoke_run.root / "executed")})
    index = build_book(cfg, out=tmp_path / "book")
    if find_chromium() is None:
        pytest.skip("no Chromium on this machine (CI installs it: apt-get install chromium)")
    screenshot = REPO / "build" / "book" / "smoke-landing.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    report = check_book(index, screenshot=screenshot)
    assert report["pages"] >= len(NOTEBOOKS) + 2
    assert not report["problems"], "\n".join(report["problems"])
    assert screenshot.stat().st_size > 10_000
