from typer.testing import CliRunner

from aine_lib.study.cli import app, parse_overrides

runner = CliRunner()


def test_parse_overrides_reads_yaml_values():
    assert parse_overrides(["data.max_train_examples=100", "name=x", "data.datasets=[sst]"]) == {
        "data.max_train_examples": 100, "name": "x", "data.datasets": ["sst"]}


def test_bad_config_key_exits_2_with_message(tiny_config):
    result = runner.invoke(app, ["run", "--config", str(tiny_config()), "--set", "sede=1"])
    assert result.exit_code == 2 and "unknown key(s) ['sede']" in result.output


def test_unknown_only_lists_notebooks(tiny_config):
    path = tiny_config("notebooks:\n  - name: 00_data\n")
    result = runner.invoke(app, ["run", "--config", str(path), "--only", "99_nope"])
    assert result.exit_code == 2 and "00_data" in result.output


def test_missing_notebook_is_reported_and_others_still_run(tiny_config, tmp_path):
    path = tiny_config("notebook_dir: nbs\nnotebooks:\n  - name: 01_missing\n  - name: 02_missing\n")
    result = runner.invoke(app, ["run", "--config", str(path)])
    assert result.exit_code == 1
    assert "01_missing: FAILED" in result.output and "02_missing: FAILED" in result.output


def test_failing_cell_is_named_and_the_next_notebook_still_runs(tiny_config, tmp_path):
    import nbformat

    folder = tmp_path / "nbs"
    folder.mkdir()
    for name, body in (("01_broken", "raise ValueError('planted failure')"), ("02_fine", "x = 1")):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("config = None\noverrides = {}", metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell("y = 2"),
                    nbformat.v4.new_code_cell(body)]
        nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
        nbformat.write(nb, folder / f"{name}.ipynb")
    path = tiny_config(f"notebook_dir: {folder}\nexecuted_dir: {tmp_path / 'executed'}\n"
                       "notebooks:\n  - name: 01_broken\n  - name: 02_fine\n")
    result = runner.invoke(app, ["run", "--config", str(path)])
    assert result.exit_code == 1
    # papermill inserts the injected-parameters cell after the tagged one, so the failing cell is index 3
    assert "01_broken: FAILED at cell 3" in result.output and "ValueError: planted failure" in result.output
    assert "02_fine: ok" in result.output and (tmp_path / "executed" / "02_fine.ipynb").exists()


def test_the_driver_profiles_every_notebook_into_study_runtime(tiny_config, tmp_path):
    import nbformat
    import pandas as pd

    folder = tmp_path / "nbs"
    folder.mkdir()
    body = ("from aine_lib.cache import ResultCache\n"
            f"cache = ResultCache({str(tmp_path / 'cache')!r})\n"
            "inner = lambda: cache.get_or_compute('transformer_faithfulness', {'k': 1}, lambda: 1)\n"
            "value = cache.get_or_compute('rnn_classifiers', {'k': 2}, lambda: inner() + 1)")
    for name, code in (("01_cached", body), ("02_plain", "x = 1")):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("config = None\noverrides = {}", metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell(code)]
        nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
        nbformat.write(nb, folder / f"{name}.ipynb")
    path = tiny_config(f"notebook_dir: {folder}\nexecuted_dir: {tmp_path / 'executed'}\n"
                       "notebooks:\n  - name: 01_cached\n  - name: 02_plain\n")
    table = tmp_path / "out" / "tables" / "study_runtime.csv"
    assert runner.invoke(app, ["run", "--config", str(path)]).exit_code == 0
    first = pd.read_csv(table).set_index("notebook")
    assert list(first.index) == ["01_cached", "02_plain"]
    assert first.loc["01_cached", "cache_misses"] == 2 and first.loc["01_cached", "cache"] == "cold"
    assert first.loc["02_plain", "cache"] == "none"
    assert {"wall_s", "train_s", "attribute_s", "evaluate_s", "commit", "cores", "torch_threads"} <= set(first.columns)
    # a rerun of one notebook: its row is replaced (the outer entry is a hit), the other row is kept
    assert runner.invoke(app, ["run", "--config", str(path), "--only", "01_cached"]).exit_code == 0
    second = pd.read_csv(table).set_index("notebook")
    assert list(second.index) == ["01_cached", "02_plain"]
    assert (second.loc["01_cached", "cache_hits"], second.loc["01_cached", "cache_misses"]) == (1, 0)
    assert second.loc["01_cached", "cache"] == "warm"
