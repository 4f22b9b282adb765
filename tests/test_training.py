"""Tests for deepfake_audio.training: tiny CNN-LSTM and XGBoost runs, determinism, bundles."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from deepfake_audio.bundle import bundle_config, load_bundle, save_config, training_key
from deepfake_audio.features import FeatureLayout, frame_schema, frames_table, utterance_schema
from deepfake_audio.inputs import LABEL_IDS, InputSource, SplitData, load_inputs
from deepfake_audio.io import write_table
from deepfake_audio.metrics import compute_eer
from deepfake_audio.models import FitContext, get_model_kind
from deepfake_audio.params import (
    AudioParams,
    FeatureParams,
    ModelParams,
    SpecAugmentParams,
    TrainParams,
    XGBoostParams,
    as_dict,
)
from deepfake_audio.runtime import select_device
from deepfake_audio.sampling import class_weights, oversample_indices, spec_augment
from deepfake_audio.training import CHECKPOINT, resumable_epoch, train_neural

torch = pytest.importorskip("torch")

N_FEATURES, N_FRAMES = 8, 32
MODEL = ModelParams(conv_channels=8, lstm_units=8, dense_units=8)
TRAIN = TrainParams(epochs=5, batch_size=16, device="cpu", seed=0)


def _build(kind, params: ModelParams):
    """The ``build(n_features, n_frames)`` that a neural kind's fit hands to train_neural."""
    return lambda n_features, n_frames: kind.build(n_features, n_frames, params)


def train_xgboost(
    data: dict[str, SplitData], *, params: XGBoostParams, train_params: TrainParams, out_dir: Path
) -> dict:
    return get_model_kind("xgboost").fit(data, FitContext(section=params, train=train_params, out_dir=out_dir))


def make_split(n: int, *, seed: int, shape: tuple[int, ...], shift: float) -> SplitData:
    """Alternating labels (1 = bona fide); bona fide clips have every value shifted by ``shift``."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int64)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    x += (shift * y).reshape((n,) + (1,) * len(shape)).astype(np.float32)
    return SplitData([f"s{seed}_{i:03d}" for i in range(n)], x, y, np.where(y == 1, "-", "A01"), np.full(n, "synth"))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine two spinning
    OpenMP threads made 5 epochs take 17 s instead of 0.1 s (measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def frame_data() -> dict[str, SplitData]:
    shape = (N_FEATURES, N_FRAMES)
    return {
        "train": make_split(64, seed=0, shape=shape, shift=0.5),
        "dev": make_split(32, seed=1, shape=shape, shift=0.5),
    }


@pytest.fixture(scope="module")
def trained(frame_data, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One CNN-LSTM run shared by the neural tests (about 2 s on one CPU thread, mostly warm-up)."""
    out = tmp_path_factory.mktemp("cnn_lstm")
    summary = train_neural(
        _build(get_model_kind("cnn_lstm"), MODEL), frame_data, name="cnn_lstm", train_params=TRAIN, out_dir=out
    )
    return {"out": out, "summary": summary}


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------- neural


def test_cnn_lstm_learns_and_writes_weights(trained: dict) -> None:
    s = trained["summary"]
    assert s["dev_eer"] < 0.2
    assert (trained["out"] / "weights.pt").is_file()
    assert 0 <= s["best_epoch"] < s["epochs_run"] <= TRAIN.epochs
    assert (s["device"], s["n_features"], s["n_frames"]) == ("cpu", N_FEATURES, N_FRAMES)
    assert np.isfinite(s["threshold"]) and s["train_samples_per_s"] > 0
    assert sorted(p.name for p in trained["out"].iterdir()) == ["weights.pt"]


def test_saved_weights_are_trained_not_initial(trained: dict) -> None:
    torch.manual_seed(TRAIN.seed)
    fresh = get_model_kind("cnn_lstm").build(N_FEATURES, N_FRAMES, MODEL).state_dict()
    saved = _state(trained["out"] / "weights.pt")
    assert saved.keys() == fresh.keys()
    assert any(not torch.equal(saved[k], fresh[k]) for k in saved if saved[k].is_floating_point())


@pytest.fixture(scope="module")
def retrained(frame_data, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A second run with the same seed and data."""
    out = tmp_path_factory.mktemp("cnn_lstm_again")
    summary = train_neural(
        _build(get_model_kind("cnn_lstm"), MODEL), frame_data, name="cnn_lstm", train_params=TRAIN, out_dir=out
    )
    return {"out": out, "summary": summary}


def test_same_seed_gives_bit_identical_weights(trained: dict, retrained: dict) -> None:
    a, b = _state(trained["out"] / "weights.pt"), _state(retrained["out"] / "weights.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for key in ("dev_eer", "threshold", "best_epoch", "epochs_run"):
        assert retrained["summary"][key] == trained["summary"][key], key


def test_same_seed_gives_byte_identical_weights_file(trained: dict, retrained: dict) -> None:
    """DVC compares outputs by md5: a same-seed retrain should not look like a new model."""
    first = (trained["out"] / "weights.pt").read_bytes()
    second = (retrained["out"] / "weights.pt").read_bytes()
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()


def test_bundle_scores_like_the_trained_model(trained: dict, frame_data) -> None:
    out, summary = trained["out"], trained["summary"]
    kind = get_model_kind("cnn_lstm")
    config = bundle_config(
        kind,
        summary,
        section=MODEL,
        train_params=TRAIN,
        audio=AudioParams(),
        features=FeatureParams(),
        scaler={"names": [], "mean": [], "std": []},
    )
    save_config(out, config)
    saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert saved["model"] == "cnn_lstm" and saved["input"] == "frames" and saved["params_section"] == "model"
    assert saved["hyper_parameters"] == as_dict(MODEL)
    bundle = load_bundle(out)
    assert bundle.kind is kind and not bundle.model.training
    dev = frame_data["dev"]
    scores = bundle.score(dev.x, batch_size=7)  # a batch size unlike training's
    assert scores.shape == (len(dev.y),) and scores.dtype == np.float64
    # The in-memory model: the same architecture with the saved state, in eval mode.
    model = kind.build(N_FEATURES, N_FRAMES, MODEL)
    model.load_state_dict(_state(out / "weights.pt"))
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(dev.x)).numpy()
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    # And the dev EER / threshold recorded at training time are reproduced from the bundle.
    eer, threshold = compute_eer(dev.y, scores)
    assert eer == pytest.approx(summary["dev_eer"])
    assert threshold == pytest.approx(summary["threshold"], rel=1e-5, abs=1e-6)
    # Higher scores mean more bona fide.
    assert scores[dev.y == 1].mean() > scores[dev.y == 0].mean()


def test_early_stopping_honours_patience(frame_data, tmp_path: Path) -> None:
    """dev EER reaches its best early on these easy data; training stops ``patience`` epochs later."""
    params = TrainParams(epochs=40, batch_size=16, device="cpu", patience=2)
    s = train_neural(
        _build(get_model_kind("cnn_lstm"), MODEL), frame_data, name="cnn_lstm", train_params=params, out_dir=tmp_path
    )
    assert s["epochs_run"] < params.epochs
    assert s["epochs_run"] == s["best_epoch"] + params.patience + 1


@pytest.mark.parametrize("schedule", ["plateau", "cosine"])
@pytest.mark.parametrize("augment", [False, True])
def test_interrupted_run_resumes_to_the_same_weights(frame_data, tmp_path: Path, schedule: str, augment: bool) -> None:
    """Stopped after 2 of 5 epochs and re-run with the same key, training resumes from the
    checkpoint and ends bit-identical to an uninterrupted run; then the checkpoint is gone."""
    masks = (
        SpecAugmentParams(time_masks=2, max_time_frames=4, feature_masks=1, max_feature_rows=2)
        if augment
        else SpecAugmentParams()
    )
    params = TrainParams(epochs=5, batch_size=16, device="cpu", patience=10, lr_schedule=schedule, spec_augment=masks)
    kind = get_model_kind("cnn_lstm")
    whole = train_neural(
        _build(kind, MODEL), frame_data, name="cnn_lstm", train_params=params, out_dir=tmp_path / "a", key="k"
    )
    (tmp_path / "b").mkdir()
    first = train_neural(
        _build(kind, MODEL),
        frame_data,
        name="cnn_lstm",
        train_params=params,
        out_dir=tmp_path / "b",
        key="k",
        stop_after=2,
    )
    assert first == {"stopped_at": 1} and resumable_epoch(tmp_path / "b", "k") == 1
    assert resumable_epoch(tmp_path / "b", "other") is None  # another key: start over
    resumed = train_neural(
        _build(kind, MODEL), frame_data, name="cnn_lstm", train_params=params, out_dir=tmp_path / "b", key="k"
    )
    for key in ("dev_eer", "threshold", "best_epoch", "epochs_run"):
        assert resumed[key] == whole[key], key
    assert (tmp_path / "a" / "weights.pt").read_bytes() == (tmp_path / "b" / "weights.pt").read_bytes()
    assert not (tmp_path / "b" / CHECKPOINT).exists()


def test_a_checkpoint_for_another_key_is_ignored(frame_data, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A checkpoint written for another key is not resumed: the run starts from scratch and ends
    as a fresh run does. The planted checkpoint (another seed, stopped after 2 of 3 epochs) would
    leave a run that resumed it with one epoch to go and other weights."""
    kind = get_model_kind("cnn_lstm")
    params = TrainParams(epochs=3, batch_size=16, device="cpu", patience=10)

    def run(out: Path, key: str, train_params: TrainParams = params, **options) -> dict:
        out.mkdir(exist_ok=True)
        return train_neural(
            _build(kind, MODEL), frame_data, name="cnn_lstm", train_params=train_params, out_dir=out, key=key, **options
        )

    run(tmp_path / "fresh", "new")
    planted = tmp_path / "planted"
    run(planted, "old", dataclasses.replace(params, seed=1), stop_after=2)
    assert resumable_epoch(planted, "old") == 1 and resumable_epoch(planted, "new") is None
    # What resuming the planted checkpoint gives, so the check below can tell the two apart.
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / CHECKPOINT).write_bytes((planted / CHECKPOINT).read_bytes())
    run(resumed, "old")
    weights = (tmp_path / "fresh" / "weights.pt").read_bytes()
    assert (resumed / "weights.pt").read_bytes() != weights

    live = _Recorder()
    caplog.clear()  # the control run above did resume, and said so
    with caplog.at_level(logging.INFO, logger="deepfake_audio.training"):
        s = run(planted, "new", live=live)
    assert "resuming" not in caplog.text
    assert len(live.values["train/loss"]) == 3  # every epoch ran in this call
    assert s["epochs_run"] == 3
    assert (planted / "weights.pt").read_bytes() == weights
    assert not (planted / CHECKPOINT).exists()
    (tmp_path / CHECKPOINT).write_bytes(b"cut off")  # a checkpoint torn by a kill is ignored, not fatal
    assert resumable_epoch(tmp_path, "new") is None


def test_schedules_change_the_learning_rate(frame_data, tmp_path: Path) -> None:
    kind = get_model_kind("cnn_lstm")
    lrs = {}
    for schedule in ("none", "cosine"):
        live = _Recorder()
        params = TrainParams(epochs=4, batch_size=16, device="cpu", lr_schedule=schedule, patience=10)
        train_neural(_build(kind, MODEL), frame_data, name="cnn_lstm", train_params=params, out_dir=tmp_path, live=live)
        lrs[schedule] = live.values["train/lr"]
    assert lrs["none"] == [1e-3] * 4
    assert lrs["cosine"][0] == pytest.approx(1e-3) and lrs["cosine"][-1] < lrs["cosine"][1] < 1e-3


class _Recorder:
    """Stands in for dvclive.Live."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}

    def log_metric(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def next_step(self) -> None:
        pass


def test_spec_augment_masks_spans_with_zeros() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.ones(64, 10, 40)
    params = SpecAugmentParams(time_masks=1, max_time_frames=5, feature_masks=1, max_feature_rows=3)
    y = spec_augment(x, params, gen)
    assert torch.equal(x, torch.ones(64, 10, 40))  # the input is left alone
    zero = y == 0
    time_cols = zero.all(dim=1)  # (B, T): frames zeroed in every row
    row_cols = zero.all(dim=2)  # (B, F): rows zeroed at every frame
    assert time_cols.sum(dim=1).max() <= 5 and row_cols.sum(dim=1).max() <= 3
    assert time_cols.any() and row_cols.any()
    for b in range(64):  # each mask is one contiguous span
        for line in (time_cols[b], row_cols[b]):
            idx = torch.nonzero(line).flatten()
            assert len(idx) == 0 or idx[-1] - idx[0] + 1 == len(idx)
    assert torch.equal(zero, (time_cols[:, None, :] | row_cols[:, :, None]))  # nothing else is zeroed


def test_training_key_tracks_used_keys_inputs_and_options(tmp_path: Path) -> None:
    data = tmp_path / "x.bin"
    data.write_bytes(b"abc")
    lstm, cnn = get_model_kind("lstm"), get_model_kind("cnn")

    def key(kind, model=MODEL, train=TRAIN, content=b"abc"):
        data.write_bytes(content)
        return training_key(kind, section=model, train_params=train, device="cpu", inputs=[data], code=[], config={})

    base_lstm, base_cnn = key(lstm), key(cnn)
    wider = ModelParams(conv_channels=8, lstm_units=16, dense_units=8)
    assert key(lstm, wider) != base_lstm and key(cnn, wider) == base_cnn  # cnn reads no lstm_units
    assert key(cnn, train=TrainParams(epochs=5, batch_size=16, device="cpu", seed=1)) != base_cnn
    assert key(cnn, train=TrainParams(epochs=5, batch_size=16, device="cpu", num_workers=2)) == base_cnn
    assert key(cnn, content=b"abd") != base_cnn


# ---------------------------------------------------------------- xgboost


def _xgb_data(shift: float) -> dict[str, SplitData]:
    return {
        "train": make_split(200, seed=2, shape=(6,), shift=shift),
        "dev": make_split(100, seed=3, shape=(6,), shift=shift),
    }


def _save_xgb_bundle(out: Path, params: XGBoostParams, summary: dict) -> Path:
    save_config(
        out,
        bundle_config(
            get_model_kind("xgboost"),
            summary,
            section=params,
            train_params=TrainParams(device="cpu"),
            audio=AudioParams(),
            features=FeatureParams(),
            scaler={},
        ),
    )
    return out


def test_xgboost_learns_and_its_bundle_scores(tmp_path: Path) -> None:
    data = _xgb_data(shift=1.5)
    params = XGBoostParams(n_estimators=60, early_stopping_rounds=10, n_jobs=1)
    summary = train_xgboost(data, params=params, train_params=TrainParams(device="cpu"), out_dir=tmp_path)
    assert summary["dev_eer"] < 0.2
    assert summary["device"] == "cpu" and summary["n_features"] == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]
    bundle = load_bundle(_save_xgb_bundle(tmp_path, params, summary))
    assert bundle.kind.input == "utterances" and bundle.kind.build is None
    dev = data["dev"]
    scores = bundle.score(dev.x)
    assert scores.shape == (100,) and scores.dtype == np.float64
    assert compute_eer(dev.y, scores) == (summary["dev_eer"], pytest.approx(summary["threshold"]))
    assert scores[dev.y == 1].mean() > scores[dev.y == 0].mean()


def test_xgboost_bundle_keeps_the_early_stopped_model(tmp_path: Path) -> None:
    """Noisy data stop early; the loaded model must score with the best iteration, not all rounds."""
    data = _xgb_data(shift=0.5)
    params = XGBoostParams(n_estimators=300, early_stopping_rounds=10, max_depth=6, learning_rate=0.3, n_jobs=1)
    summary = train_xgboost(data, params=params, train_params=TrainParams(device="cpu"), out_dir=tmp_path)
    bundle = load_bundle(_save_xgb_bundle(tmp_path, params, summary))
    assert summary["best_iteration"] + 1 < bundle.model.get_booster().num_boosted_rounds() < 300
    eer, threshold = compute_eer(data["dev"].y, bundle.score(data["dev"].x))
    assert eer == summary["dev_eer"]
    assert threshold == pytest.approx(summary["threshold"])


def test_xgboost_is_deterministic(tmp_path: Path) -> None:
    data = _xgb_data(shift=1.0)
    params = XGBoostParams(n_estimators=30, early_stopping_rounds=10, n_jobs=1)
    for name in ("a", "b"):
        train_xgboost(data, params=params, train_params=TrainParams(device="cpu"), out_dir=tmp_path / name)
    assert (tmp_path / "a" / "model.json").read_bytes() == (tmp_path / "b" / "model.json").read_bytes()


# ---------------------------------------------------------------- helpers


def test_class_weights_balance_the_classes() -> None:
    y = np.array([1, 0, 0, 0, 0, 0])
    assert class_weights(y, "weights") == 5.0
    assert class_weights(y, "none") == 1.0
    assert class_weights(np.zeros(4, dtype=int), "weights") == 1.0
    assert class_weights(y, "oversample") == 1.0  # oversampling balances by rows, not weights


@pytest.mark.parametrize("n_pos,n_neg", [(3, 10), (10, 3), (4, 4), (1, 7), (0, 5)])
def test_oversample_indices_balance_exactly_and_keep_every_row(n_pos: int, n_neg: int) -> None:
    y = np.array([1] * n_pos + [0] * n_neg)[np.random.default_rng(1).permutation(n_pos + n_neg)]
    idx = oversample_indices(y, seed=0)
    assert np.array_equal(idx[: len(y)], np.arange(len(y)))  # every original row once, in order
    if n_pos and n_neg:
        assert (y[idx] == 1).sum() == (y[idx] == 0).sum() == max(n_pos, n_neg)
        minor = np.flatnonzero(y == (1 if n_pos < n_neg else 0))
        counts = np.bincount(idx, minlength=len(y))[minor]
        assert counts.max() - counts.min() <= 1  # copies spread evenly over minority rows
    else:
        assert len(idx) == len(y)
    assert np.array_equal(idx, oversample_indices(y, seed=0))


def test_xgboost_trains_with_oversampling(tmp_path: Path) -> None:
    data = _xgb_data(shift=1.5)
    keep = np.flatnonzero((data["train"].y == 0) | (np.arange(len(data["train"].y)) % 8 == 1))  # 1 in 4 bona fide
    train = data["train"]
    data["train"] = type(train)(
        [train.ids[i] for i in keep], train.x[keep], train.y[keep], train.attacks[keep], train.sources[keep]
    )
    params = XGBoostParams(n_estimators=40, early_stopping_rounds=10, n_jobs=1)
    summary = train_xgboost(
        data, params=params, train_params=TrainParams(device="cpu", balance="oversample"), out_dir=tmp_path
    )
    assert summary["dev_eer"] < 0.25
    assert (data["train"].y == 1).sum() == 25 and (data["train"].y == 0).sum() == 100  # input left as it was


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_select_device_without_gpu() -> None:
    with pytest.raises(RuntimeError, match="train.device=cuda"):
        select_device("cuda")
    assert select_device("auto").type == "cpu"
    assert select_device("cpu").type == "cpu"


def test_load_inputs_aligns_features_with_the_manifest(tmp_path: Path) -> None:
    """Rows follow the manifest, labels map 1 = bona fide, and clips missing from the features are skipped."""
    ids = ["c", "a", "b", "d"]  # feature-table order differs from the manifest's
    x = np.arange(4 * N_FEATURES * 4, dtype=np.float32).reshape(4, N_FEATURES, 4)
    layout = FeatureLayout(
        tuple(f"f{i}" for i in range(N_FEATURES)),
        ("u_mean", "u_std"),
        4,
        frame_groups=("a",) * 2 + ("b",) * (N_FEATURES - 2),
    )
    write_table(tmp_path / "frames.parquet", frames_table(frame_schema(layout), ids, x))
    u = np.stack([np.arange(4.0), -np.arange(4.0)], axis=1).astype(np.float32)
    write_table(
        tmp_path / "utterances.parquet",
        pa.Table.from_arrays([pa.array(ids), pa.array(u[:, 0]), pa.array(u[:, 1])], schema=utterance_schema(layout)),
    )
    manifest = pd.DataFrame(
        {
            "utt_id": ["a", "b", "c", "d", "rejected"],
            "label": ["bonafide", "spoof", "spoof", "bonafide", "spoof"],
            "attack": ["-", "A01", "A02", "-", "A01"],
            "source": ["s"] * 5,
            "split": ["train", "train", "dev", "eval:bench", "train"],
        }
    )
    for kind_name, path_key in (("cnn_lstm", "frames"), ("xgboost", "utts")):
        out = load_inputs(
            manifest,
            input=get_model_kind(kind_name).input,
            source=InputSource(scaled=tmp_path),
            splits=["train", "dev", "eval:bench"],
        )
        train = out["train"]
        assert train.ids == ["a", "b"]
        assert train.y.tolist() == [LABEL_IDS["bonafide"], LABEL_IDS["spoof"]] == [1, 0]
        assert train.attacks.tolist() == ["-", "A01"]
        source = x if path_key == "frames" else u
        np.testing.assert_array_equal(train.x, source[[1, 2]])
        np.testing.assert_array_equal(out["dev"].x, source[[0]])
        assert out["eval:bench"].ids == ["d"] and out["eval:bench"].y.tolist() == [1]
        assert train.x.dtype == np.float32


# ---------------------------------------------------------------- DistributedDataParallel


def _ddp_worker(rank: int, world: int, init_file: str, out: str, data: dict) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        params = TrainParams(epochs=4, batch_size=8, device="cpu", patience=10)
        summary = train_neural(
            _build(get_model_kind("cnn_lstm"), MODEL),
            data,
            name="cnn_lstm",
            train_params=params,
            out_dir=Path(out),
            key="ddp",
        )
        torch.save({"summary": summary}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_with_two_gloo_processes_trains_and_rank0_alone_writes(
    frame_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two CPU processes (gloo), as torchrun would start them: gradients are averaged, so both
    ranks take the same decisions; rank 0 alone writes the weights and checkpoints."""
    import types

    import torch.multiprocessing as mp

    # "spawn" children re-import the parent's __main__; whatever an earlier test left there (e.g.
    # a script run in-process) must not run in them, or they die before reading their arguments.
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    out = tmp_path / "bundle"
    out.mkdir()
    ctx = mp.spawn(_ddp_worker, args=(2, str(tmp_path / "rendezvous"), str(out), frame_data), nprocs=2, join=False)
    deadline = time.monotonic() + 600  # a stuck collective fails the test instead of hanging CI
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for proc in ctx.processes:
                proc.kill()
            pytest.fail("DDP workers did not finish within 600 s")
    r0 = torch.load(out / "rank0.pt", weights_only=True)["summary"]
    r1 = torch.load(out / "rank1.pt", weights_only=True)["summary"]
    for key in ("dev_eer", "best_epoch", "epochs_run", "threshold"):
        assert r0[key] == r1[key], key
    assert r0["dev_eer"] < 0.25  # it learned: 64 rows, 32 per process
    assert r0["train_samples_per_s"] > 0
    assert sorted(p.name for p in out.iterdir()) == ["rank0.pt", "rank1.pt", "weights.pt"]  # no checkpoint left
    model = get_model_kind("cnn_lstm").build(N_FEATURES, N_FRAMES, MODEL)
    model.load_state_dict(torch.load(out / "weights.pt", weights_only=True))


# ---------------------------------------------------------------- a train stage killed mid-epoch

KILLED_EPOCHS = 5


def _stage_inputs(root: Path, *, n_train: int) -> list[str]:
    """Scaled frames, scaler.json, manifest and params.yaml for ``stages.train --model cnn_lstm``;
    returns the stage's arguments but ``--out`` and ``--live``."""
    # A faint shift: dev EER still falls at the last epoch, so the bundle's weights (the best
    # epoch's) come from an epoch trained after the resume.
    train = make_split(n_train, seed=10, shape=(N_FEATURES, N_FRAMES), shift=0.05)
    dev = make_split(256, seed=11, shape=(N_FEATURES, N_FRAMES), shift=0.05)
    ids = train.ids + dev.ids
    layout = FeatureLayout(
        tuple(f"mfcc_{i}" for i in range(N_FEATURES)), ("u",), N_FRAMES, frame_groups=("mfcc",) * N_FEATURES
    )
    scaled = root / "scaled"
    scaled.mkdir(parents=True)
    write_table(scaled / "frames.parquet", frames_table(frame_schema(layout), ids, np.concatenate([train.x, dev.x])))
    (scaled / "scaler.json").write_text(json.dumps({"names": [], "mean": [], "std": []}), encoding="utf-8")
    y = np.concatenate([train.y, dev.y])
    pd.DataFrame(
        {
            "utt_id": ids,
            "label": np.where(y == 1, "bonafide", "spoof"),
            "attack": np.concatenate([train.attacks, dev.attacks]),
            "source": "synth",
            "split": ["train"] * len(train.ids) + ["dev"] * len(dev.ids),
        }
    ).to_parquet(root / "manifest.parquet")
    params = {
        "model": {**as_dict(MODEL), "sequence_groups": ["mfcc"]},
        "train": {
            "models": {"cnn_lstm": "model"},
            "epochs": KILLED_EPOCHS,
            "batch_size": 16,
            "patience": 10,
            "device": "cpu",
            "num_workers": 0,
            "compile": False,
        },
    }
    (root / "params.yaml").write_text(json.dumps(params), encoding="utf-8")  # JSON is YAML
    return [
        sys.executable,
        "-m",
        "stages.train",
        "--model",
        "cnn_lstm",
        "--manifest",
        str(root / "manifest.parquet"),
        "--scaled",
        str(scaled),
        "--params",
        str(root / "params.yaml"),
    ]


def _start_stage(command: list[str], out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # one thread, like the module fixture
    return subprocess.Popen(
        [*command, "--out", str(out / "bundle"), "--live", str(out / "live")],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> str:
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output[-4000:]
    return output


@pytest.mark.slow
def test_a_train_stage_killed_mid_epoch_resumes_to_the_same_bundle(tmp_path: Path) -> None:
    """SIGKILL during an epoch, after at least two epochs' checkpoints: re-running the same command
    resumes from the last checkpoint and writes the weights an uninterrupted run writes."""
    command = _stage_inputs(tmp_path / "inputs", n_train=1024)  # 64 batches an epoch
    whole = _start_stage(command, tmp_path / "whole")
    killed = _start_stage(command, tmp_path / "killed")
    checkpoint = tmp_path / "killed" / "bundle" / CHECKPOINT
    seen: dict[int, float] = {}  # epoch -> when its checkpoint appeared
    stamp, deadline = None, time.monotonic() + 240
    while not any(epoch >= 1 for epoch in seen):
        assert killed.poll() is None, "the stage ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint of epoch 1 within 240 s"
        if checkpoint.exists() and checkpoint.stat().st_mtime_ns != stamp:  # read each new checkpoint once
            stamp = checkpoint.stat().st_mtime_ns
            seen.setdefault(_state(checkpoint)["epoch"], time.monotonic())
        time.sleep(0.01)
    epoch_s = max(seen.values()) - min(seen.values())
    time.sleep(epoch_s / 4)  # a quarter into the next epoch's batches
    killed.send_signal(signal.SIGKILL)
    output, _ = killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    last = _state(checkpoint)["epoch"]
    # Killed inside epoch last + 1: its checkpoint was still to come, and no weights were written.
    assert 1 <= last < KILLED_EPOCHS - 1 and f"epoch {last}: train loss" in output
    assert f"epoch {last + 1}: train loss" not in output
    assert not (tmp_path / "killed" / "bundle" / "weights.pt").exists()

    resumed = _finish(_start_stage(command, tmp_path / "killed"))
    assert f"resuming cnn_lstm from the checkpoint of epoch {last}" in resumed
    assert f"epoch {last}: train loss" not in resumed and f"epoch {KILLED_EPOCHS - 1}: train loss" in resumed
    _finish(whole)
    assert (tmp_path / "killed" / "bundle" / "weights.pt").read_bytes() == (
        tmp_path / "whole" / "bundle" / "weights.pt"
    ).read_bytes()
    configs = [
        json.loads((tmp_path / run / "bundle" / "config.json").read_text(encoding="utf-8"))
        for run in ("whole", "killed")
    ]
    assert configs[0] == configs[1]
    assert configs[1]["summary"]["best_epoch"] > last, "the saved weights must come from after the resume"
    assert sorted(p.name for p in (tmp_path / "killed" / "bundle").iterdir()) == ["config.json", "weights.pt"]
