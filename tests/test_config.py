"""Config schema, recipes and override errors."""

from pathlib import Path

import pytest

from routertrain.config import Config, ConfigError, available_recipes, load_config, valid_keys

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("recipe", available_recipes())
def test_every_recipe_loads_and_validates(recipe):
    cfg = load_config([f"recipe={recipe}"])
    assert isinstance(cfg, Config)
    assert cfg.recipe == recipe
    assert cfg.model.name_or_path


def test_required_recipes_exist():
    assert {"deberta-large", "deberta-base", "mpnet-base", "minilm-l6", "minilm-l3", "smoke"} <= set(available_recipes())


def test_overrides_are_typed_and_applied():
    cfg = load_config(["recipe=deberta-large", "train.lr=2e-5", "data.fraction=0.25", "model.lora.r=16", "data.models=[a,b]"])
    assert cfg.train.lr == pytest.approx(2e-5) and isinstance(cfg.train.lr, float)
    assert cfg.data.fraction == 0.25
    assert cfg.model.lora.r == 16
    assert cfg.data.models == ["a", "b"]
    assert cfg.train.mixed_precision == "bf16"  # from the recipe
    assert cfg.model.name_or_path == "microsoft/deberta-v3-large"


def test_schema_defaults_without_recipe():
    cfg = load_config([])
    assert cfg.recipe is None and cfg.train.global_batch_size == Config().train.global_batch_size


def test_data_recipe_merges_into_data_section():
    cfg = load_config(["data=synthetic", "data.synthetic.n_train=10"])
    assert cfg.data.name == "synthetic" and cfg.data.synthetic.n_train == 10


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train.lrr=1e-4"], "unknown config key 'train.lrr' in override 'train.lrr=1e-4'; did you mean 'train.lr'?"),
        (["trian.lr=1e-4"], "did you mean 'train"),
        (["model.lora.rank=8"], "did you mean 'model.lora.r'"),
        (["recipe=deberta-larg"], "unknown recipe 'deberta-larg'; did you mean 'deberta-large'?"),
        (["data=routerdcc"], "unknown data recipe 'routerdcc'"),
        (["train.lr=fast"], "'train.lr'"),
        (["train.epochs=[1,2]"], "'train.epochs'"),
        (["train.mixed_precision=bf17"], "did you mean 'bf16'"),
        (["model.pooling=max"], "choose one of mean, cls"),
        (["data.fraction=1.5"], "'data.fraction': must be in (0, 1]"),
        (["train.save_every=-2"], "'train.save_every': must be -1 (never)"),
        (["train.pad_to_multiple_of=-8"], "'train.pad_to_multiple_of': must be 0 (auto)"),
        (["train.num_workers=-1"], "'train.num_workers': must be 0"),
        (["tracking.log_every=0"], "'tracking.log_every': must be at least 1"),
        (["model.dropout=2"], "'model.dropout': must be in [0, 1)"),
        (["data.validation_size=0"], "'data.validation_size': must be in (0, 1)"),
        (["data.test_size=1.5"], "'data.test_size': must be in (0, 1)"),
        (["train=5"], "'train' in override 'train=5' is a config section, not a value; set one of its keys, e.g. 'train."),
        ([f"run.output_dir={REPO / 'README.md'}"], "README.md' is a file, not a folder"),
        ([f"train.resume={REPO / 'recipes'}"], "recipes' is neither auto, never nor a checkpoint folder"),
        (["train.global_batch_size=0"], "'train.global_batch_size'"),
        (["tracking.backend=mlflow"], "'tracking.backend'"),
        (["lr"], "is not key=value"),
    ],
)
def test_bad_overrides_give_one_line_errors(args, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(args)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize("args, fragment", [(["data.name=nope"], "'data.name': choose one of synthetic"), (["model.attention_kernel=flash"], "'model.attention_kernel'")])
def test_registries_check_their_own_names(args, fragment):
    """config does not import the registries; check_names asks them, right after load_config."""
    from routertrain.cli.common import check_names

    cfg = load_config(args)
    with pytest.raises(ConfigError) as info:
        check_names(cfg)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_recipes_by_name_or_by_path(tmp_path):
    """A packaged recipe by name; a user's recipe or data recipe file by path, with or without .yaml."""
    (tmp_path / "mine.yaml").write_text("train:\n  lr: 0.123\n")
    (tmp_path / "mydata.yaml").write_text("name: synthetic\nsynthetic:\n  n_train: 17\n")
    for suffix in ("", ".yaml"):
        cfg = load_config([f"recipe={tmp_path / 'mine'}{suffix}", f"data={tmp_path / 'mydata'}{suffix}"])
        assert cfg.train.lr == 0.123 and cfg.data.synthetic.n_train == 17 and cfg.recipe == "mine"
    assert load_config(["recipe=smoke"]).recipe == "smoke"
    with pytest.raises(ConfigError, match="or give the path of a YAML file"):
        load_config([f"data={tmp_path / 'absent.yaml'}"])


def test_valid_keys_cover_sections_and_leaves():
    keys = valid_keys()
    assert "train.lr" in keys and "model.lora.r" in keys and "data.synthetic.n_train" in keys


def test_yaml_boolean_words_stay_text_for_string_keys():
    cfg = load_config(["train.mixed_precision=no", "run.name=on", "train.resume=never"])
    assert cfg.train.mixed_precision == "no" and cfg.run.name == "on"
    assert load_config(["model.gradient_checkpointing=yes"]).model.gradient_checkpointing is True
    assert load_config(["run.name=null"]).run.name is None
