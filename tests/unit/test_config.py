import pytest

from aine_lib.config import ConfigError, config_to_dict, load_config
from tests.conftest import REPO


@pytest.mark.parametrize("name", ["smoke", "paper"])
def test_shipped_configs_load(name):
    cfg = load_config(REPO / "configs" / f"{name}.yaml")
    assert cfg.name == name
    assert cfg.root_path == REPO
    assert [nb.name for nb in cfg.notebooks][:2] == ["00_quickstart", "00_data"]
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

    from aine_lib.cache import canonical
    from tests.conftest import REPO

    cfg = load_config(REPO / "configs" / "paper.yaml")
    mapping = cfg.transformer.analysis_examples
    assert dict(mapping) == {"newsgroups": 100}
    with pytest.raises(TypeError, match="read-only"):
        mapping["sst"] = 10
    back = pickle.loads(pickle.dumps(cfg))
    assert back == cfg and canonical(back) == canonical(cfg)
    with pytest.raises(TypeError, match="read-only"):
        back.transformer.analysis_examples["sst"] = 10


# ----- one error naming the key, what is allowed and the nearest valid key or value --------------------

def test_misspelt_top_level_key_names_it_and_the_nearest_key(tiny_config):
    with pytest.raises(ConfigError) as err:
        load_config(tiny_config("sede: 3\n"))
    msg = str(err.value)
    assert "'sede'" in msg and "did you mean 'seed'?" in msg and "'workers'" in msg   # the allowed keys listed
    assert "overrides" not in msg                                                        # it came from the file


def test_misspelt_nested_key_names_its_full_dotted_key_and_the_nearest_key(tiny_config):
    with pytest.raises(ConfigError) as err:
        load_config(tiny_config("seq2seq:\n  bible:\n    vocab_sise: 3000\n"))
    msg = str(err.value)
    assert "'seq2seq.bible.vocab_sise'" in msg and "did you mean 'seq2seq.bible.vocab_size'?" in msg
    assert "allowed keys in seq2seq.bible are" in msg and "'warmup_steps'" in msg


@pytest.mark.parametrize("override", [
    {"data.planted.n_trian": 5},                       # a --set style dotted key
    {"data": {"planted": {"n_trian": 5}}},             # the same as nested mappings
    {"data.planted": {"n_trian": 5}},                  # and half of each
])
def test_misspelt_override_key_is_named_as_an_override_with_the_nearest_key(tiny_config, override):
    with pytest.raises(ConfigError) as err:
        load_config(tiny_config(), overrides=override)
    msg = str(err.value)
    assert "'data.planted.n_trian'" in msg and "did you mean 'data.planted.n_train'?" in msg
    assert "from the overrides" in msg and "'distractor_prob'" in msg


def test_a_key_like_no_valid_key_lists_the_allowed_keys_without_a_guess(tiny_config):
    with pytest.raises(ConfigError) as err:
        load_config(tiny_config(), overrides={"rnn.zzz": 1})
    msg = str(err.value)
    assert "'rnn.zzz'" in msg and "allowed keys in rnn are" in msg and "did you mean" not in msg


@pytest.mark.parametrize("override, fragments", [
    ({"device": "cdua"}, ["device: got 'cdua'", "one of 'auto', 'cpu', 'cuda'", "did you mean 'cuda'?"]),
    ({"data.datasets": ["sst", "newsgroup"]},
     ["data.datasets[1]: got 'newsgroup'", "'uci_sentiment'", "did you mean 'newsgroups'?"]),
    ({"executor": "rey"}, ["executor: got 'rey'", "one of 'local', 'ray'", "did you mean 'ray'?"]),
    ({"scaling.family_seeds": {"minlm": [0]}},
     ["scaling.family_seeds key 'minlm'", "'scratch'", "did you mean 'minilm'?"]),
    ({"internals.stability_datasets": ["sts"]}, ["internals.stability_datasets[0]: got 'sts'", "did you mean 'sst'?"]),
    ({"transformer.analysis_examples": {"newsgroup": 3}},
     ["unknown data set 'newsgroup'", "'planted'", "did you mean 'transformer.analysis_examples.newsgroups'?"]),
    # method names are plain strings checked against the registry, with the same suggestion
    ({"internals.ensemble_members": ["loo", "integrated_gradient"]},
     ["internals.ensemble_members", "choose from", "did you mean 'integrated_gradients'?"]),
    ({"scaling.attention_methods": ["rolout"]}, ["scaling.attention_methods", "'flow'", "did you mean 'rollout'?"]),
    ({"scaling.other_methods": ["loo", "gradient_x_inputs"]},
     ["scaling.other_methods", "'lime'", "did you mean 'gradient_x_input'?"]),
])
def test_a_name_out_of_its_allowed_set_names_key_allowed_values_and_nearest(tiny_config, override, fragments):
    with pytest.raises(ConfigError) as err:
        load_config(tiny_config(), overrides=override)
    for fragment in fragments:
        assert fragment in str(err.value)


@pytest.mark.parametrize("override, fragment", [
    ({"rnn.epochs": 2.5}, "rnn.epochs: got 2.5, expected int"),
    ({"data.planted.distractor_prob": "high"}, "data.planted.distractor_prob: got 'high', expected float"),
    ({"data.max_train_examples": "all"}, "data.max_train_examples: got 'all', expected int or null"),
    ({"data.planted": 3}, "data.planted: got 3, expected a mapping with keys ['n_train'"),
    ({"data.datasets": "sst"}, "data.datasets: got 'sst', expected a list of (one of 'sst'"),
])
def test_a_wrong_type_names_key_expected_type_and_value(tiny_config, override, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(tiny_config(), overrides=override)
    assert fragment in str(err.value)


def test_a_scalar_where_a_list_belongs_says_how_to_write_the_list(tiny_config):
    with pytest.raises(ConfigError, match=r"write a list, e\.g\. \[sst\]"):
        load_config(tiny_config(), overrides={"data.datasets": "sst"})


def test_an_unknown_notebook_name_suggests_the_nearest(tiny_config):
    cfg = load_config(tiny_config("notebooks:\n  - name: 00_data\n  - name: 01_performance\n"))
    with pytest.raises(ConfigError, match=r"choose one of \['00_data', '01_performance'\]; did you mean '00_data'\?"):
        cfg.notebook("00_dta")


def test_valid_overrides_of_every_kind_still_load(tiny_config):
    cfg = load_config(tiny_config(), overrides={"data.planted.n_train": 80, "transformer.analysis_examples.sst": 7,
                                                "seq2seq": {"bible": {"vocab_size": 3000}}, "device": "cpu"})
    assert cfg.data.planted.n_train == 80 and dict(cfg.transformer.analysis_examples) == {"sst": 7}
    assert cfg.seq2seq.bible.vocab_size == 3000 and cfg.device == "cpu"


def test_the_package_keeps_the_names_the_module_had():
    import aine_lib.config as config

    for name in ("ConfigError", "load_config", "config_to_dict", "build_dataclass", "FrozenDict", "StudyConfig",
                 "DataConfig", "PlantedConfig", "RNNStudyConfig", "CounterStudyConfig", "ScratchTransformerConfig",
                 "TransformerStudyConfig", "BibleConfig", "Seq2SeqStudyConfig", "InternalsConfig", "ScalingConfig",
                 "NotebookConfig", "DATASET_NAMES", "DATA_DIR_ENV", "DatasetName", "DeviceName", "EncoderName",
                 "AttentionName", "FaithfulnessMode", "TransductionTask", "ScalingFamily", "ExecutorName",
                 "_coerce", "_describe", "_deep_merge"):
        assert hasattr(config, name), name


@pytest.mark.parametrize("override, fragment", [
    # ranges the training configs enforce, now checked at load instead of when a model first trains
    ({"rnn.weight_decay": -0.1}, "rnn.weight_decay must be >= 0, got -0.1"),
    ({"transformer.minilm_lr": 0}, "transformer.minilm_lr must be > 0, got 0"),
    ({"transformer.weight_decay": -1}, "transformer.weight_decay must be >= 0, got -1"),
    ({"transformer.warmup_fraction": 1.0}, "transformer.warmup_fraction must be in [0, 1), got 1.0"),
    ({"seq2seq.lr_scale": 0}, "seq2seq.lr_scale must be > 0, got 0"),
    ({"seq2seq.dropout": 1.0}, "seq2seq.dropout and seq2seq.label_smoothing must be in [0, 1), got 1.0 and 0.1"),
])
def test_training_ranges_are_checked_at_load(tiny_config, override, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(tiny_config(), overrides=override)
    assert fragment in str(err.value)
