from typer.testing import CliRunner

from aine_lib.cli import app, parse_overrides

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
