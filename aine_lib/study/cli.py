"""Command line: ``aine run --config configs/smoke.yaml [--only NAME] [--set key=value]``."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any, Optional

import typer
import yaml

from aine_lib.cache import stage_outputs
from aine_lib.config import ConfigError, load_config
from aine_lib.data import fetch_for_config
from aine_lib.report.findings import answers_markdown
from aine_lib.study.book import build_book, check_book
from aine_lib.study.driver import run_study

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="aine: attention is not explanation -- run the study, fetch its data.")

CONFIG_OPTION = typer.Option(Path("configs/smoke.yaml"), "--config", "-c",
                             help="study config (configs/smoke.yaml or configs/paper.yaml)")
SET_OPTION = typer.Option(None, "--set", help="override a config value, e.g. --set data.max_train_examples=100")


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["a.b=1", "name=x"]`` -> ``{"a.b": 1, "name": "x"}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--set expects key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _load(config: Path, overrides: dict[str, Any]):
    try:
        return load_config(config, overrides)
    except ConfigError as exc:
        typer.echo(f"config error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def run(config: Path = CONFIG_OPTION,
        only: Optional[list[str]] = typer.Option(None, "--only", help="run only these notebooks (repeatable)"),
        set_: Optional[list[str]] = SET_OPTION,
        executor: Optional[str] = typer.Option(None, "--executor",
                                               help="how grids of runs are spread: local (a process pool, "
                                                    "the default) or ray (a Ray cluster or a local Ray instance)"),
        workers: Optional[int] = typer.Option(None, "--workers", help="processes / Ray CPUs (default: all cores)"),
        ray_address: Optional[str] = typer.Option(None, "--ray-address",
                                                  help="an existing Ray cluster (default: start a local one)")) -> None:
    """Execute the study's notebooks with papermill; executed copies go to build/notebooks/."""
    overrides = parse_overrides(set_)
    for key, value in (("executor", executor), ("workers", workers), ("ray_address", ray_address)):
        if value is not None:
            overrides[key] = value
    cfg = _load(config, overrides)
    started = time.perf_counter()
    try:
        outcomes = run_study(cfg, only, overrides)
    except ConfigError as exc:
        typer.echo(f"config error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for outcome in outcomes:
        typer.echo(outcome.describe())
    failed = [o.name for o in outcomes if not o.ok]
    typer.echo(f"{len(outcomes) - len(failed)} of {len(outcomes)} notebooks ok in "
               f"{time.perf_counter() - started:.1f} s; outputs in {cfg.figures_dir.parent}")
    if failed:
        typer.echo(f"failed: {', '.join(failed)}", err=True)
        raise typer.Exit(1)


@app.command()
def fetch(config: Path = CONFIG_OPTION, set_: Optional[list[str]] = SET_OPTION) -> None:
    """Download, verify and extract every raw archive the config needs (then work offline)."""
    cfg = _load(config, parse_overrides(set_))
    started = time.perf_counter()
    for key, folder in fetch_for_config(cfg).items():
        typer.echo(f"{key}: {folder}")
    typer.echo(f"data ready in {cfg.data_root} ({time.perf_counter() - started:.1f} s)")


@app.command()
def book(config: Path = CONFIG_OPTION,
         check: bool = typer.Option(False, "--check", help="open every page in headless Chromium and report "
                                                             "broken images, error cells and broken links")) -> None:
    """Build the HTML book from the config's executed notebooks (run `aine run` first)."""
    cfg = _load(config, {})
    index = build_book(cfg)
    typer.echo(f"book: {index}")
    if check:
        shot = index.parents[3] / "landing.png"
        report = check_book(index, screenshot=shot)
        for problem in report["problems"]:
            typer.echo(problem, err=True)
        typer.echo(f"{report['pages']} pages checked, {len(report['problems'])} problems; landing page: {shot}")
        if report["problems"]:
            raise typer.Exit(1)


@app.command()
def answers(config: Path = CONFIG_OPTION) -> None:
    """Print the study's questions with the evidence the config's tables carry (Markdown)."""
    cfg = _load(config, {})
    typer.echo(answers_markdown(cfg.tables_dir, cfg.name))


@app.command()
def stage(names: list[str] = typer.Argument(..., help="notebooks whose outputs to stage, e.g. 08_attention_maps"),
          config: Path = CONFIG_OPTION) -> None:
    """`git add` these notebooks' figures, tables and manifest entries, leaving out other notebooks' outputs
    that a running chain is still writing (the manifests are staged as HEAD's plus these entries)."""
    cfg = _load(config, {})
    try:
        staged = stage_outputs([cfg.figures_dir, cfg.tables_dir], list(names), cfg.root_path)
    except subprocess.CalledProcessError as exc:
        typer.echo(f"stage: {exc}: {exc.stderr.decode(errors='replace').strip()}", err=True)
        raise typer.Exit(2) from exc
    except (ValueError, FileNotFoundError) as exc:   # FileNotFoundError: no git on PATH
        typer.echo(f"stage: {exc}", err=True)
        raise typer.Exit(2) from exc
    for path in staged:
        typer.echo(f"staged {path}")


@app.command()
def notebooks(config: Path = CONFIG_OPTION) -> None:
    """List the config's notebooks and the parameters each one receives."""
    cfg = _load(config, {})
    for nb in cfg.notebooks:
        typer.echo(f"{nb.name}: {dict(nb.parameters)}")


if __name__ == "__main__":  # pragma: no cover
    app()
