"""Tests for deepfake_audio.params: defaults, the repo's params.yaml, and ParamError messages."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest
import yaml

from deepfake_audio.errors import ParamError
from deepfake_audio.models import get_model_kind, known_models
from deepfake_audio.params import (
    AudioParams,
    DataParams,
    FeatureParams,
    ModelParams,
    Params,
    SplitParams,
    TrainParams,
    XGBoostParams,
    as_dict,
    from_dict,
    load_params,
    params_from_dict,
)

REPO_PARAMS = Path(__file__).parents[1] / "params.yaml"


def _write_yaml(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _raises(data: dict, *, key: str) -> ParamError:
    """``from_dict(Params, data)`` must raise a ParamError for ``key``; returns it."""
    with pytest.raises(ParamError) as info:
        from_dict(Params, data, prefix="")
    assert info.value.key == key
    assert str(info.value).startswith(f"bad parameter {key}=")
    return info.value


# ---------------------------------------------------------------- loading


def test_defaults_are_valid_and_match_empty_yaml(tmp_path: Path) -> None:
    params = load_params(_write_yaml(tmp_path, {}))
    assert params == Params()
    assert params.audio.n_samples == 64000
    assert from_dict(Params, None, prefix="") == Params()


def test_empty_section_takes_defaults(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train:\nsplit:\n  seed: 3\n", encoding="utf-8")
    params = load_params(path)
    assert params.train == TrainParams()
    assert params.split == SplitParams(seed=3)


def test_repo_params_yaml_loads() -> None:
    params = load_params(REPO_PARAMS)
    raw = yaml.safe_load(REPO_PARAMS.read_text(encoding="utf-8"))
    assert isinstance(params, Params)
    # Every key written in the file reaches the typed object (nothing silently dropped).
    for section, values in raw.items():
        obj = getattr(params, section)
        for key, value in (values or {}).items():
            assert as_dict(getattr(obj, key)) == value, f"{section}.{key}"


def test_as_dict_round_trips_through_from_dict() -> None:
    params = load_params(REPO_PARAMS)
    assert from_dict(Params, as_dict(params), prefix="") == params


def test_sections_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainParams().epochs = 3  # type: ignore[misc]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ParamError, match="expected a mapping"):
        load_params(_write_yaml(tmp_path, [1, 2]))


# ---------------------------------------------------------------- bad values name key, value and what is allowed


def test_unknown_key_lists_known_keys() -> None:
    err = _raises({"train": {"epoch": 5}}, key="train.epoch")
    assert "unknown key" in str(err)
    assert "epochs" in err.allowed and "batch_size" in err.allowed


def test_unknown_section() -> None:
    err = _raises({"trian": {}}, key="trian")
    assert "train" in err.allowed


@pytest.mark.parametrize(
    "data,key,allowed",
    [
        ({"train": {"epochs": "5"}}, "train.epochs", "expected an integer"),
        ({"train": {"epochs": 5.0}}, "train.epochs", "expected an integer"),
        ({"train": {"epochs": True}}, "train.epochs", "expected an integer"),
        ({"train": {"lr": "fast"}}, "train.lr", "expected a number"),
        ({"train": {"lr": False}}, "train.lr", "expected a number"),
        ({"audio": {"sample_rate": None}}, "audio.sample_rate", "expected an integer"),
        ({"train": {"models": ["cnn_lstm"]}}, "train.models", "expected a mapping"),
        ({"data": {"sources": "demo"}}, "data.sources", "expected a list"),
        ({"data": {"sources": [{"kind": "demo"}, "folder"]}}, "data.sources[1]", "expected a mapping"),
        ({"features": {"n_fft": [512]}}, "features.n_fft", "expected an integer"),
        ({"audio": 16000}, "audio", "expected a mapping"),
    ],
)
def test_wrong_types(data: dict, key: str, allowed: str) -> None:
    err = _raises(data, key=key)
    assert allowed in err.allowed
    value = data
    for part in key.replace("[", ".").replace("]", "").split("."):
        value = value[int(part)] if part.isdigit() else value[part]
    assert repr(value) in str(err)


@pytest.mark.parametrize(
    "data,key,allowed",
    [
        ({"train": {"epochs": 0}}, "train.epochs", "> 0"),
        ({"train": {"lr": -0.1}}, "train.lr", "> 0"),
        ({"train": {"weight_decay": -1e-4}}, "train.weight_decay", ">= 0"),
        ({"train": {"models": {}}}, "train.models", "at least one"),
        ({"audio": {"sample_rate": 0}}, "audio.sample_rate", "> 0"),
        ({"audio": {"duration_s": -1.0}}, "audio.duration_s", "> 0"),
        ({"split": {"train": 1.0, "dev": 0.0, "test": 0.0}}, "split.train", "(0, 1)"),
        ({"features": {"mfcc": {"n_mfcc": 200}}}, "features.mfcc.n_mfcc", "n_mels (128)"),
        ({"features": {"mfcc": {"deltas": 3}}}, "features.mfcc.deltas", "delta-delta"),
        ({"features": {"lfcc": {"n_lfcc": 30}}}, "features.lfcc.n_lfcc", "n_filters (20)"),
        ({"features": {"utterance_groups": ["rms", "rms"]}}, "features.utterance_groups", "at most once"),
        ({"features": {"frame_groups": [], "utterance_groups": []}}, "features.frame_groups", "at least one"),
        ({"features": {"stats": ["mean", "median"]}}, "features.stats", "p50"),
        ({"features": {"stats": ["p101"]}}, "features.stats", "percentile"),
        ({"features": {"stats": []}}, "features.stats", "at least one"),
        ({"features": {"cqt": {"bins_per_octave": 0}}}, "features.cqt.bins_per_octave", "> 0"),
        ({"features": {"hop_length": 1024}}, "features.hop_length", "n_fft (512)"),
        ({"features": {"spectral_rolloff": {"roll_percent": 1.0}}}, "features.spectral_rolloff.roll_percent", "(0, 1)"),
        ({"features": {"max_reject_fraction": 1.5}}, "features.max_reject_fraction", "[0, 1]"),
        ({"features": {"n_jobs": 0}}, "features.n_jobs", "-1"),
        ({"features": {"n_jobs": -2}}, "features.n_jobs", "-1"),
        ({"model": {"dropout": 1.0}}, "model.dropout", "[0, 1)"),
        ({"model": {"kernel_size": 0}}, "model.kernel_size", "> 0"),
        ({"xgboost": {"subsample": 0.0}}, "xgboost.subsample", "(0, 1]"),
        ({"xgboost": {"max_depth": -3}}, "xgboost.max_depth", "> 0"),
        ({"data": {"sources": []}}, "data.sources", "at least one"),
        ({"data": {"sources": [{"path": "x.csv"}]}}, "data.sources[0]", "'kind'"),
        ({"data": {"eval_sets": {"dev": {"kind": "demo"}}}}, "data.eval_sets.dev", "train/dev/test"),
        ({"data": {"eval_sets": {"bench": "x.csv"}}}, "data.eval_sets.bench", "'kind'"),
        ({"data": {"eval_sets": {"bench-dev": {"kind": "demo"}}}}, "data.eval_sets", "letters, digits"),
        ({"data": {"eval_sets": {"../up": {"kind": "demo"}}}}, "data.eval_sets", "letters, digits"),
        ({"data": {"eval_sets": {"for.v2": {"kind": "demo"}}}}, "data.eval_sets", "letters, digits"),
        ({"data": {"eval_sets": {2021: {"kind": "demo"}}}}, "data.eval_sets", "starting with a letter"),
    ],
)
def test_out_of_range(data: dict, key: str, allowed: str) -> None:
    err = _raises(data, key=key)
    assert allowed in err.allowed


def test_accepted_edge_values() -> None:
    """The boundaries the messages promise are really allowed."""
    params = from_dict(
        Params,
        {
            "features": {
                "n_jobs": -1,
                "max_reject_fraction": 0.0,
                "mfcc": {"n_mfcc": 64, "deltas": 0},
                "stats": ["p0", "p100"],
                "frame_groups": [],
            },
            "train": {"weight_decay": 0, "grad_clip": 0.0},
            "xgboost": {"subsample": 1.0},
            "model": {"dropout": 0.0},
        },
        prefix="",
    )
    assert params.features.n_jobs == -1
    assert params.xgboost.subsample == 1.0


@pytest.mark.parametrize(
    "section,key,value,choices",
    [
        ("train", "device", "gpu", "auto, cpu, cuda"),
        ("train", "balance", "undersample", "weights, oversample, none"),
        ("audio", "pad", "reflect", "repeat, zero"),
        ("audio", "crop", "random", "start, center"),
        ("split", "strategy", "kfold", "stratified_group, official, unseen_attacks, random"),
    ],
)
def test_bad_literal_lists_choices(section: str, key: str, value: str, choices: str) -> None:
    err = _raises({section: {key: value}}, key=f"{section}.{key}")
    assert err.value == value
    assert choices in err.allowed


def test_int_is_accepted_for_float_and_converted() -> None:
    params = from_dict(Params, {"train": {"lr": 1, "grad_clip": 5}}, prefix="")
    assert params.train.lr == 1.0 and isinstance(params.train.lr, float)
    assert isinstance(params.train.grad_clip, float)


def test_lists_become_tuples() -> None:
    params = from_dict(Params, {"data": {"sources": [{"kind": "demo"}, {"kind": "folder", "path": "x"}]}}, prefix="")
    assert params.data.sources == ({"kind": "demo"}, {"kind": "folder", "path": "x"})


@pytest.mark.parametrize(
    "values,total",
    [
        ({"train": 0.5, "dev": 0.2, "test": 0.2}, "0.9"),
        ({"train": 0.7, "dev": 0.2, "test": 0.2}, "1.1"),
    ],
)
def test_split_fractions_must_sum_to_one(values: dict, total: str) -> None:
    err = _raises({"split": values}, key="split")
    assert "must be 1" in err.allowed and total in err.allowed


def test_split_fractions_tolerate_float_rounding() -> None:
    assert from_dict(SplitParams, {"train": 0.7, "dev": 0.1, "test": 0.2}, prefix="split").train == 0.7


def test_load_params_reports_dotted_key_from_file(tmp_path: Path) -> None:
    raw = yaml.safe_load(REPO_PARAMS.read_text(encoding="utf-8"))
    raw["train"]["epochs"] = "thirty"
    with pytest.raises(ParamError) as info:
        load_params(_write_yaml(tmp_path, raw))
    assert "train.epochs='thirty'" in str(info.value)
    assert "expected an integer" in str(info.value)


def test_each_section_class_validates_with_its_prefix() -> None:
    for cls, section in (
        (AudioParams, "audio"),
        (FeatureParams, "features"),
        (ModelParams, "model"),
        (TrainParams, "train"),
        (XGBoostParams, "xgboost"),
        (DataParams, "data"),
        (SplitParams, "split"),
    ):
        assert from_dict(cls, {}, prefix=section) == cls()
        with pytest.raises(ParamError) as info:
            from_dict(cls, {"no_such_key": 1}, prefix=section)
        assert info.value.key == f"{section}.no_such_key"


# ---------------------------------------------------------------- train.models and model kinds


def test_every_configured_model_is_known_and_mapped_to_its_section() -> None:
    params = load_params(REPO_PARAMS)
    section_names = {f.name for f in dataclasses.fields(Params)}
    assert params.train.models, "params.yaml trains no model"
    for name, section in params.train.models.items():
        kind = get_model_kind(name, section=section)
        assert kind.name == name
        assert kind.params_section == section
        assert section in section_names
        assert kind.input in ("frames", "utterances")
        assert (kind.build is not None) == (kind.input == "frames")  # the torch kinds read frames


@pytest.mark.parametrize("name", known_models())
def test_wrong_section_names_the_right_one(name: str) -> None:
    right = get_model_kind(name).params_section
    wrong = "xgboost" if right != "xgboost" else "model"
    with pytest.raises(ParamError) as info:
        get_model_kind(name, section=wrong)
    assert info.value.key == f"train.models.{name}"
    assert info.value.value == wrong
    assert f"{name}: {right}" in str(info.value)


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ParamError) as info:
        get_model_kind("transformer", section="model")
    assert info.value.key == "train.models.transformer"
    for name in known_models():
        assert name in info.value.allowed


# ---------------------------------------------------------------- ParamError


def test_param_error_survives_pickling() -> None:
    """Errors raised in joblib workers are pickled back to the parent."""
    err = ParamError("train.epochs", {"nested": [1, 2]}, "expected an integer")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is ParamError
    assert (back.key, back.value, back.allowed) == (err.key, err.value, err.allowed)
    assert str(back) == str(err)
    assert isinstance(back, ValueError)


def test_param_error_from_validation_survives_pickling() -> None:
    with pytest.raises(ParamError) as info:
        from_dict(Params, {"features": {"mfcc": {"n_mfcc": 200}}}, prefix="")
    back = pickle.loads(pickle.dumps(info.value))
    assert str(back) == str(info.value) and back.key == "features.mfcc.n_mfcc"


def test_yaml_1_1_exponent_strings_are_read_as_numbers() -> None:
    """PyYAML reads ``lr: 1e-3`` (no dot) as the string "1e-3"; it must still mean 0.001."""
    import yaml

    raw = yaml.safe_load("train:\n  lr: 1e-3\n")
    assert raw["train"]["lr"] == "1e-3"
    assert from_dict(Params, raw, prefix="").train.lr == pytest.approx(0.001)


# ---------------------------------------------------------------- defaults, sections and cross-section rules


def test_shipped_params_equal_the_defaults() -> None:
    """Defaults cannot drift from params.yaml: every section loads to its dataclass defaults."""
    shipped = load_params(REPO_PARAMS)
    assert shipped == Params(), "params.yaml and the defaults in deepfake_audio/params.py differ"


def test_a_section_train_models_does_not_name_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("trian:\n  epochs: 3\n", encoding="utf-8")
    with pytest.raises(ParamError) as info:
        load_params(path)
    assert info.value.key == "trian" and "unknown section" in str(info.value)


def test_a_model_kinds_own_section_is_kept_for_its_kind() -> None:
    params = params_from_dict(
        {"train": {"models": {"cnn_lstm": "model", "mine": "my_section"}}, "my_section": {"depth": 3}}
    )
    assert params.section("my_section") == {"depth": 3}
    assert params.section("model") is params.model
    with pytest.raises(ParamError) as info:
        params_from_dict({"sections": {}})
    assert info.value.key == "sections"


def test_augmentation_rates_must_fit_the_sample_rate_at_load_time() -> None:
    """A cross-section rule: fails when params load, naming the key, not later in a feature worker."""
    with pytest.raises(ParamError) as info:
        params_from_dict(
            {"audio": {"sample_rate": 8000}, "features": {"augment": {"copies": 1, "resample_rates": [11025]}}}
        )
    assert info.value.key == "features.augment.resample_rates[0]" and "8000" in info.value.allowed
    with pytest.raises(ParamError) as info:
        params_from_dict(
            {
                "audio": {"sample_rate": 8000},
                "features": {"augment": {"copies": 1, "resample_rates": [4000], "band_limit_hz": [[50.0, 7000.0]]}},
            }
        )
    assert info.value.key == "features.augment.band_limit_hz[0]"


def test_feature_group_names_are_checked_by_the_feature_registry() -> None:
    from deepfake_audio.features import check_feature_params

    params = from_dict(FeatureParams, {"frame_groups": ["mfcc", "mfccs"]}, prefix="features")
    with pytest.raises(ParamError) as info:
        check_feature_params(params, AudioParams())
    assert info.value.key == "features.frame_groups" and info.value.value == "mfccs"
    assert "known feature groups: mfcc, log_mel" in info.value.allowed
    # Groups that cannot work at the sample rate fail here too, before any clip is read.
    with pytest.raises(ParamError) as info:
        check_feature_params(FeatureParams(), AudioParams(sample_rate=8000))
    assert info.value.key == "features.spectral_contrast.n_bands"
    check_feature_params(FeatureParams(), AudioParams())  # the shipped settings pass


def test_the_params_loader_imports_nothing_from_the_project() -> None:
    import ast

    import deepfake_audio.params as module

    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    imported = [
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in (n.names if isinstance(n, ast.Import) else [n])
    ]
    assert not [m for m in imported if m and m.split(".")[0] == "deepfake_audio"]
