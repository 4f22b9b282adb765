"""The ``logistic`` kind: the worked example of a model kind that lives in one file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepfake_audio.bundle import bundle_config, load_bundle, save_config
from deepfake_audio.inputs import SplitData
from deepfake_audio.metrics import compute_eer
from deepfake_audio.models import FitContext, check_model_params, get_model_kind
from deepfake_audio.params import AudioParams, FeatureParams, ParamError, TrainParams, params_from_dict


def _split(n: int, *, seed: int, shift: float) -> SplitData:
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3 == 0).astype(np.int64)  # 1 bona fide in 3, as in the demo corpus
    x = rng.standard_normal((n, 5)).astype(np.float32)
    x[:, 0] += shift * y
    return SplitData([f"u{seed}_{i}" for i in range(n)], x, y, np.where(y == 1, "-", "A01"), np.full(n, "s"))


def test_the_kind_is_found_without_any_other_edit() -> None:
    kind = get_model_kind("logistic")
    assert kind.input == "utterances" and kind.params_section == "logistic" and kind.weights == "logistic.json"
    params = params_from_dict({"train": {"models": {"logistic": "logistic"}}, "logistic": {"c": 0.5}})
    assert check_model_params(params)["logistic"] is kind
    assert kind.section(params).c == 0.5
    with pytest.raises(ParamError) as info:
        kind.section(params_from_dict({"train": {"models": {"logistic": "logistic"}}, "logistic": {"c": 0}}))
    assert info.value.key == "logistic.c"


def test_fit_save_load_score(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    kind = get_model_kind("logistic")
    data = {"train": _split(300, seed=0, shift=2.0), "dev": _split(150, seed=1, shift=2.0)}
    section = kind.section(params_from_dict({"train": {"models": {"logistic": "logistic"}}}))
    train = TrainParams(device="cpu")
    summary = kind.fit(data, FitContext(section=section, train=train, out_dir=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logistic.json"]
    assert summary["dev_eer"] < 0.2
    save_config(
        tmp_path,
        bundle_config(
            kind, summary, section=section, train_params=train, audio=AudioParams(), features=FeatureParams(), scaler={}
        ),
    )
    bundle = load_bundle(tmp_path)
    dev = data["dev"]
    scores = bundle.score(dev.x)
    assert scores.dtype == np.float64 and scores.shape == (150,)
    assert compute_eer(dev.y, scores) == (summary["dev_eer"], pytest.approx(summary["threshold"]))
    # The JSON coefficients score exactly as scikit-learn's model does (balanced class weights).
    weight = np.where(data["train"].y == 1, 2.0, 1.0)
    reference = LogisticRegression(C=1.0, max_iter=1000).fit(data["train"].x, data["train"].y, sample_weight=weight)
    np.testing.assert_allclose(scores, reference.decision_function(dev.x), rtol=1e-5, atol=1e-5)  # sklearn: float32
