import pytest

from aine_lib.config import ConfigError, config_to_dict, load_config
from tests.conftest import REPO


@pytest.mark.parametrize("name", ["smoke", "paper"])
def test_shipped_configs_load(name):
    cfg = load_config(REPO / "configs" / f"{name}.yaml")
    assert cfg.name == name
    assert cfg.root_path == REPO
    assert [nb.name for nb in cfg.notebooks][0] == "00_data"
    # every listed notebook exists
    for nb in cfg.notebooks:
        assert (REPO / "notebooks" / f"{nb.name}.ipynb").exists(), nb.name


def test_paper_writes_committed_outputs_and_smoke_writes_build():
    paper = load_config(REPO / "configs/paper.yaml")
    smoke = load_config(REPO / "configs/smoke.yaml")
    assert paper.figures_dir == REPO / "figures" and paper.tables_dir == REPO / "tables"
    assert smoke.figures_dir == REPO / "build/smoke/figures"


def test_unknown_top_level_key_names_key_and_allowed(tiny_config):
    path = tiny_config("sede: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "sede" in msg and "seed" in msg and "allowed keys" in msg


def test_unknown_nested_key_names_its_section(tiny_config):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['n_trian'\] in data.planted"):
        load_config(tiny_config(), overrides={"data.planted.n_trian": 5})


@pytest.mark.parametrize("override, fragment", [
    ({"device": "tpu"}, "one of 'auto', 'cpu', 'cuda'"),
    ({"data.datasets": ["sst", "imdb"]}, "data.datasets[1]"),
    ({"seed": "zero"}, "seed: got 'zero'"),
    ({"data.dev_fraction": 0.7}, "data.dev_fraction must be in (0, 0.5)"),
    ({"data.max_train_examples": 0}, "max_train_examples must be a positive integer"),
    ({"progress": "yes"}, "expected bool"),
    ({"data.planted.max_length": 2, "data.planted.min_length": 1}, "to fit the planted tokens"),
    ({"seq2seq.tasks": ["copy", "bibel"]}, "seq2seq.tasks[1]"),
    ({"seq2seq.bible.d_model": 100, "seq2seq.bible.heads": 3}, "seq2seq.bible.d_model (100) must be divisible"),
    ({"seq2seq.bible.vocab_size": 50}, "seq2seq.bible.vocab_size must be >= 100"),
    ({"seq2seq.bible.seeds": []}, "seq2seq.bible.seeds must be a non-empty list"),
    # a mapping's keys and values are checked like fields of their own
    ({"transformer.analysis_examples": {"sst": "ten"}}, "transformer.analysis_examples.sst: got 'ten', expected int"),
    ({"transformer.analysis_examples": {"sst": True}}, "transformer.analysis_examples.sst: got True"),
    ({"transformer.analysis_examples": {1: 10}}, "transformer.analysis_examples key 1: got 1, expected str"),
])
def test_bad_values_are_rejected_with_the_key(tiny_config, override, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(tiny_config(), overrides=override)
    assert fragment in str(err.value)


def test_overrides_win_and_config_is_frozen(tiny_config):
    cfg = load_config(tiny_config(), overrides={"data.max_train_examples": 10, "seed": 3})
    assert cfg.data.max_train_examples == 10 and cfg.seed == 3
    with pytest.raises(Exception):
        cfg.seed = 4  # frozen dataclass


def test_missing_file_names_the_shipped_configs(tmp_path):
    with pytest.raises(ConfigError, match="configs/smoke.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_notebook_parameters_may_not_shadow_driver_parameters(tiny_config):
    path = tiny_config("notebooks:\n  - name: 00_data\n    parameters: {config: x}\n")
    with pytest.raises(ConfigError, match="driver injects"):
        load_config(path)


def test_data_dir_env_overrides_root(tiny_config, monkeypatch, tmp_path):
    monkeypatch.setenv("AINE_DATA_DIR", str(tmp_path / "elsewhere"))
    assert load_config(tiny_config()).data_root == tmp_path / "elsewhere"


def test_config_to_dict_is_plain(tiny_config):
    d = config_to_dict(load_config(tiny_config()))
    assert d["data"]["planted"]["n_train"] == 60 and "source" not in d


def test_per_dataset_analysis_caps_are_checked():
    from aine_lib.config import TransformerStudyConfig

    assert dict(TransformerStudyConfig(analysis_examples={"newsgroups": 200}).analysis_examples) == {"newsgroups": 200}
    with pytest.raises(ConfigError, match="unknown data set 'imdb'"):
        TransformerStudyConfig(analysis_examples={"imdb": 3})
    with pytest.raises(ConfigError, match="positive integer"):
        TransformerStudyConfig(analysis_examples={"sst": 0})


def test_configs_pickle_for_process_pool_workers_and_their_mappings_stay_read_only():
    """`aine run --executor local --workers 2` sends the config to worker processes: it must pickle, including
    its Mapping fields (types.MappingProxyType did not), and come back equal with the same cache keys."""
    import pickle

    from aine_lib.io import canonical
    from tests.conftest import REPO

    cfg = load_config(REPO / "configs" / "paper.yaml")
    mapping = cfg.transformer.analysis_examples
    assert dict(mapping) == {"newsgroups": 200}
    with pytest.raises(TypeError, match="read-only"):
        mapping["sst"] = 10
    back = pickle.loads(pickle.dumps(cfg))
    assert back == cfg and canonical(back) == canonical(cfg)
    with pytest.raises(TypeError, match="read-only"):
        back.transformer.analysis_examples["sst"] = 10
