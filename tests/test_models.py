"""Every registered model kind: shapes, declared params, inputs, and that each one can learn."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deepfake_audio.errors import ParamError  # noqa: E402
from deepfake_audio.models import check_model_params, get_model_kind, known_models  # noqa: E402
from deepfake_audio.params import ModelParams, XGBoostParams, from_dict, params_from_dict  # noqa: E402

NEURAL = ["cnn", "cnn2d", "cnn_bilstm_attention", "cnn_lstm", "lcnn", "lstm"]
WAVEFORM = ["aasist", "lcnn_wave", "rawnet2"]  # tests/test_waveform_models.py
SMALL = ModelParams(conv_channels=16, lstm_units=16, attention_dim=16, dense_units=16)


def test_registry_holds_every_seed_model_and_the_references() -> None:
    assert known_models() == sorted(
        NEURAL + ["xgboost", "logistic"] + WAVEFORM + ["ssl_linear", "ssl_attm", "ssl_aasist"]
    )
    with pytest.raises(ParamError, match="known: aasist, cnn, cnn2d"):
        get_model_kind("resnet")


@pytest.mark.parametrize("name", NEURAL)
@pytest.mark.parametrize("n_features, n_frames", [(60, 63), (128, 251)])
def test_forward_gives_one_logit_per_clip(name: str, n_features: int, n_frames: int) -> None:
    model = get_model_kind(name).build(n_features, n_frames, SMALL)
    x = torch.randn(3, n_features, n_frames)
    out = model(x)
    assert out.shape == (3,) and torch.isfinite(out).all()
    out.sum().backward()  # every parameter gets a gradient
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", NEURAL)
def test_docstring_lists_exactly_the_keys_it_uses(name: str) -> None:
    """Each model's docstring says which ``model`` keys it reads, and they are its ``uses``."""
    kind = get_model_kind(name)
    doc = kind.build.__doc__
    listed = re.search(r"Uses ``model``: ([a-z_, ]+)", " ".join(doc.split())).group(1)
    assert {k.strip() for k in listed.split(",")} == set(kind.uses)
    assert set(kind.uses) <= {f.name for f in dataclasses.fields(ModelParams)}


@pytest.mark.parametrize("name", NEURAL)
def test_unused_keys_do_not_change_the_model(name: str) -> None:
    """Changing a key a model does not declare leaves its architecture alone (so not declaring it
    as a DVC dependency is safe); changing one it declares changes something."""
    kind = get_model_kind(name)
    base = kind.build(64, 63, SMALL)
    shapes = {k: v.shape for k, v in base.state_dict().items()}
    changes = {
        "conv_channels": 32,
        "n_conv_blocks": 3,
        "kernel_size": 3,
        "lstm_units": 24,
        "lstm_layers": 2,
        "attention_dim": 24,
        "dense_units": 24,
    }
    for key, value in changes.items():
        other = {
            k: v.shape for k, v in kind.build(64, 63, dataclasses.replace(SMALL, **{key: value})).state_dict().items()
        }
        assert (other != shapes) == (key in kind.uses), key


def test_frame_groups_per_model() -> None:
    p = from_dict(ModelParams, {"sequence_groups": ["mfcc", "rms"], "image_group": "cqt"}, prefix="model")
    assert get_model_kind("cnn_lstm").groups(p) == ("mfcc", "rms")
    assert get_model_kind("lstm").groups(p) == ("mfcc", "rms")
    assert get_model_kind("cnn2d").groups(p) == ("cqt",)
    assert get_model_kind("lcnn").groups(p) == ("lfcc",)
    assert get_model_kind("xgboost").groups(XGBoostParams()) is None


@pytest.mark.parametrize(
    "data, key", [({"sequence_groups": []}, "model.sequence_groups"), ({"attention_dim": 0}, "model.attention_dim")]
)
def test_bad_model_params(data: dict, key: str) -> None:
    with pytest.raises(ParamError) as info:
        from_dict(ModelParams, data, prefix="model")
    assert info.value.key == key


@pytest.mark.parametrize(
    "model, key, value",
    [
        ({"sequence_groups": ["mfcc", "mel"]}, "model.sequence_groups", "mel"),
        ({"image_group": "spectrogram"}, "model.image_group", "spectrogram"),
        ({"image_group": "cqt"}, "model.image_group", "cqt"),
    ],
)
def test_a_model_reading_a_group_features_do_not_extract_fails_at_load(model: dict, key: str, value: str) -> None:
    """A cross-section rule checked by the model registry when the train stage loads its params."""
    params = params_from_dict({"model": model})
    with pytest.raises(ParamError) as info:
        check_model_params(params)
    assert info.value.key == key and info.value.value == value
    assert "features.frame_groups" in info.value.allowed


def test_every_shipped_model_passes_the_registry_checks() -> None:
    from deepfake_audio.params import load_params

    kinds = check_model_params(load_params(Path(__file__).resolve().parents[1] / "params.yaml"))
    assert list(kinds) == ["cnn_lstm", "cnn_bilstm_attention", "cnn", "lstm", "cnn2d", "xgboost"]


def test_a_kind_with_its_own_section_parses_it_with_its_own_dataclass() -> None:
    """A new kind brings its params dataclass; the loader keeps its section raw, the kind parses it."""
    import dataclasses as dc

    from deepfake_audio.models import ModelKind

    @dc.dataclass(frozen=True)
    class TinyParams:
        depth: int = 2

    kind = ModelKind(
        "tiny", "tiny", TinyParams, "utterances", "tiny.json", fit=None, load=None, score=None, uses=("depth",)
    )
    params = params_from_dict({"train": {"models": {"tiny": "tiny"}}, "tiny": {"depth": 5}})
    assert kind.section(params) == TinyParams(depth=5)
    with pytest.raises(ParamError) as info:
        kind.section(params_from_dict({"train": {"models": {"tiny": "tiny"}}, "tiny": {"dpeth": 5}}))
    assert info.value.key == "tiny.dpeth"
    with pytest.raises(ValueError, match="lacks"):
        ModelKind("bad", "tiny", TinyParams, "utterances", "x", fit=None, load=None, score=None, uses=("width",))


def test_too_few_frames_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="too few"):
        get_model_kind("lcnn").build(60, 8, SMALL)
    with pytest.raises(ValueError, match="too few"):
        get_model_kind("cnn2d").build(2, 63, SMALL)


def test_max_feature_map_halves_channels() -> None:
    from deepfake_audio.models.neural import MaxFeatureMap

    x = torch.tensor([[[[1.0]], [[5.0]], [[3.0]], [[2.0]]]])  # (1, 4, 1, 1)
    np.testing.assert_array_equal(MaxFeatureMap()(x).flatten().numpy(), [3.0, 5.0])


@pytest.mark.parametrize("name", NEURAL)
def test_each_model_learns_a_separable_toy_task(name: str) -> None:
    """Class 1 has a band of energy in rows 8-15 during the middle frames: every model, trained a
    few steps with Adam, must get the training batch right."""
    torch.manual_seed(0)
    n, n_features, n_frames = 32, 32, 32
    x = torch.randn(n, n_features, n_frames) * 0.5
    y = (torch.arange(n) % 2).float()
    x[y == 1, 8:16, 8:24] += 2.0
    model = get_model_kind(name).build(n_features, n_frames, SMALL)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        model.train()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = ((model(x) > 0).float() == y).float().mean().item()
    assert accuracy >= 0.9, (name, accuracy, loss.item())
