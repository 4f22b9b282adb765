"""tools/profile.py: a params profile as `dvc exp run -S` overrides that DVC applies as written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tools.profile import main, overrides

ROOT = Path(__file__).resolve().parents[1]


def test_overrides_add_new_keys_and_replace_existing(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  models: {cnn: model}\n  epochs: 3\n", encoding="utf-8")
    profile = tmp_path / "p.yaml"
    profile.write_text(
        "train: {models: {aasist: aasist}, epochs: 40}\naasist: {channels: [[1, 32], [32, 64]], n_samples: 64600}\n",
        encoding="utf-8",
    )
    assert overrides(profile, params) == [
        "-S +train.models.aasist=aasist",
        "-S train.epochs=40",
        "-S +aasist.channels=[[1,32],[32,64]]",
        "-S +aasist.n_samples=64600",
    ]


def test_dvc_applies_the_gpu_profile_to_params_yaml(tmp_path: Path) -> None:
    """The shipped GPU profile, applied the way `dvc exp run -S` applies it, gives params that load."""
    from dvc.utils.hydra import apply_overrides

    from deepfake_audio.params import load_params

    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    args = " ".join(overrides(ROOT / "profiles" / "gpu.yaml", params)).split()  # the shell's word splitting
    assert args[0::2] == ["-S"] * (len(args) // 2)
    apply_overrides(str(params), args[1::2])
    loaded = load_params(params)
    profile = yaml.safe_load((ROOT / "profiles" / "gpu.yaml").read_text(encoding="utf-8"))
    assert set(profile["train"]["models"]) <= set(loaded.train.models)
    assert loaded.train.device == "cuda" and loaded.train.epochs == profile["train"]["epochs"]
    assert loaded.section("aasist")["channels"] == profile["aasist"]["channels"]


def test_dvc_applies_the_xlsr_aasist_profile_to_params_yaml(tmp_path: Path) -> None:
    """The XLS-R + AASIST recipe's profile gives params that load: a fine-tuned SSL back-end."""
    from dvc.utils.hydra import apply_overrides

    from deepfake_audio.models import check_model_params
    from deepfake_audio.params import load_params

    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    args = " ".join(overrides(ROOT / "profiles" / "xlsr-aasist.yaml", params)).split()
    apply_overrides(str(params), args[1::2])
    loaded = load_params(params)
    kind = check_model_params(loaded)["ssl_aasist"]
    section = kind.section(loaded)
    assert kind.input_for(section) == "waveform" and section.frontend.checkpoint == "models/ssl/xls-r-300m"
    assert section.channels == ((1, 32), (32, 32), (32, 64), (64, 64)) and loaded.train.augment.ops == ("rawboost",)


def test_a_string_with_a_space_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("train: {device: 'cu da'}\n", encoding="utf-8")
    assert main([str(profile), "--params", str(ROOT / "params.yaml")]) == 2
    assert "whitespace" in capsys.readouterr().err


def test_the_ci_profile_loads_and_trains_every_kind_the_pipeline_ships() -> None:
    """The gate covers every registered kind (but the opt-in worked example `logistic`)."""
    from deepfake_audio.models import check_model_params, known_models
    from deepfake_audio.params import params_from_dict
    from tools.ci_profile import merge

    base = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    profile = yaml.safe_load((ROOT / "ci" / "profile.yaml").read_text(encoding="utf-8"))
    params = params_from_dict(merge(base, profile))
    assert set(check_model_params(params)) == set(known_models()) - {"logistic"}
    assert params.train.augment.prob > 0  # the waveform kinds train on augmented crops there
