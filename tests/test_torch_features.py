"""TorchFrontend against the numpy/librosa extractor it must reproduce.

Tolerances. The extractor runs its FFT in float64; the front-end runs it in float32 (on the
device, and under autocast). float32 rounding moves each bin by about 1e-7 of its frame's peak
magnitude, so a band ``L`` dB below that peak moves by about ``8.7 * 1e-7 * 10**(L / 20)`` dB; the
dB floor stops ``L`` at 80, which bounds the log-mel error near 5e-3 dB (:data:`LOG_TOL`). Cepstra
sum 20-128 such bands through an orthonormal DCT, with coefficients up to about 1,100 (c0 of a
silent clip) whose float32 sums round at 1e-4 each: :data:`CEPSTRUM_TOL` is 1e-2. Both are below
1e-3 of the spread of any feature row on speech (several dB), so a model cannot tell the paths
apart. Seen on these signals (all of PARAMS): log_mel 1.0e-3 dB
(the chirp), lfcc 4.3e-4, mfcc 1.5e-3 (c0 of the quiet clip, about -1100).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from deepfake_audio.features import FeatureExtractor
from deepfake_audio.params import AudioParams, FeatureParams, LfccParams, MfccParams
from deepfake_audio.scaling import Scaler
from deepfake_audio.torch_features import SUPPORTED_GROUPS, TorchFrontend, frontend_rows

AUDIO = AudioParams()  # 16 kHz, 4 s: 64,000 samples
LOG_TOL = 5e-3  # dB
CEPSTRUM_TOL = 1e-2  # cepstral coefficients of dB, and their deltas
TOLERANCE = {"log_mel": LOG_TOL, "lfcc": CEPSTRUM_TOL, "mfcc": CEPSTRUM_TOL}

PARAMS = {
    "default": FeatureParams(),
    "alternate": FeatureParams(
        n_fft=1024,
        hop_length=160,
        n_mels=64,
        fmin=30.0,
        mfcc=MfccParams(n_mfcc=24, deltas=0),
        lfcc=LfccParams(n_lfcc=30, n_filters=60, deltas=0),
    ),
    "one_delta": FeatureParams(mfcc=MfccParams(n_mfcc=13, deltas=1), lfcc=LfccParams(deltas=1)),
}


def signals(n_samples: int = AUDIO.n_samples, sample_rate: int = AUDIO.sample_rate) -> dict[str, np.ndarray]:
    """Seeded test clips, float32 ``(n_samples,)``."""
    rng = np.random.default_rng(7)
    t = np.arange(n_samples) / sample_rate
    duration = n_samples / sample_rate
    syllables = (0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t)) ** 2  # 4 Hz syllable-rate envelope
    raw = {
        "noise": 0.1 * rng.standard_normal(n_samples),
        "sine": 0.5 * np.sin(2 * np.pi * 440.0 * t),
        "two_sines": 0.3 * np.sin(2 * np.pi * 300.0 * t) + 0.2 * np.sin(2 * np.pi * 3100.0 * t),
        "chirp": 0.5 * np.sin(2 * np.pi * (100.0 * t + (7900.0 - 100.0) / (2 * duration) * t**2)),
        # speech-like: pink-ish noise (a one-pole low-pass of white noise) under a syllable envelope
        "am_noise": 0.3 * syllables * np.convolve(rng.standard_normal(n_samples), 0.9 ** np.arange(64))[:n_samples],
        "quiet": 3e-6 * rng.standard_normal(n_samples),  # bands straddle the 1e-10 power floor
        "silence": np.zeros(n_samples),
    }
    return {name: y.astype(np.float32) for name, y in raw.items()}


SIGNALS = signals()


def only(group: str, features: FeatureParams) -> FeatureParams:
    return dataclasses.replace(features, frame_groups=(group,), utterance_groups=())


def extracted(group: str, features: FeatureParams, clips: list[np.ndarray]) -> np.ndarray:
    """The extractor's frames of ``group`` for each clip: float32 ``(n, rows, n_frames)``."""
    extractor = FeatureExtractor(AUDIO, only(group, features))
    return np.stack([extractor.extract(y)[0] for y in clips])


@pytest.mark.parametrize("params", list(PARAMS))
@pytest.mark.parametrize("group", SUPPORTED_GROUPS)
def test_matches_extractor(group: str, params: str) -> None:
    features = PARAMS[params]
    expected = extracted(group, features, list(SIGNALS.values()))
    frontend = TorchFrontend(group, features=features, audio=AUDIO)
    got = frontend(torch.from_numpy(np.stack(list(SIGNALS.values()))))
    assert got.dtype == torch.float32
    assert (
        got.shape
        == expected.shape
        == (len(SIGNALS), frontend_rows(group, features), 1 + AUDIO.n_samples // features.hop_length)
    )
    worst = np.abs(got.numpy() - expected).max(axis=(1, 2))
    assert (worst <= TOLERANCE[group]).all(), f"max abs difference per signal: {dict(zip(SIGNALS, worst))}"


def test_quiet_signal_reaches_the_floor() -> None:
    # The quiet clip exercises the power floor (1e-10, i.e. -100 dB) and the 80-dB floor below the
    # clip's peak: some bands sit on a floor, others above it.
    db = TorchFrontend("log_mel", features=FeatureParams(), audio=AUDIO)(torch.from_numpy(SIGNALS["quiet"])[None])[0]
    floor = max(-100.0, float(db.max()) - 80.0)
    on_floor = (db <= floor + 1e-4).float().mean()
    assert 0.05 < on_floor < 0.95


def test_row_count_and_names() -> None:
    features = FeatureParams()
    for group in SUPPORTED_GROUPS:
        frontend = TorchFrontend(group, features=features, audio=AUDIO)
        layout = FeatureExtractor(AUDIO, features).layout
        assert frontend.rows == tuple(layout.frame_names[i] for i in layout.frame_rows(group))
        assert frontend.n_rows == frontend_rows(group, features) == len(frontend.rows)
    assert frontend_rows("lfcc", features) == 60 and frontend_rows("mfcc", features) == 120
    assert frontend_rows("log_mel", features) == 128


def test_unsupported_group_names_the_supported_ones() -> None:
    with pytest.raises(ValueError, match="'chroma'.*log_mel, lfcc, mfcc"):
        TorchFrontend("chroma", features=FeatureParams(), audio=AUDIO)
    with pytest.raises(ValueError, match="supported: log_mel, lfcc, mfcc"):
        frontend_rows("cqt", FeatureParams())


def test_bad_shapes() -> None:
    frontend = TorchFrontend("lfcc", features=FeatureParams(), audio=AUDIO)
    with pytest.raises(ValueError, match=r"\(B, n_samples\).*\(2, 3, 64000\)"):
        frontend(torch.zeros(2, 3, 64000))
    with pytest.raises(ValueError, match="deltas need at least 9 frames"):
        frontend(torch.zeros(1, 256 * 7))


def test_channel_axis_and_other_lengths() -> None:
    frontend = TorchFrontend("mfcc", features=FeatureParams(), audio=AUDIO)
    y = torch.from_numpy(np.stack([SIGNALS["noise"], SIGNALS["chirp"]]))
    assert torch.equal(frontend(y), frontend(y[:, None]))
    # A crop of another length gets what an extractor for that length computes.
    short = AudioParams(duration_s=1.0)
    clip = SIGNALS["am_noise"][: short.n_samples]
    expected = FeatureExtractor(short, only("mfcc", FeatureParams())).extract(clip)[0]
    got = frontend(torch.from_numpy(clip)[None])[0].numpy()
    assert got.shape == expected.shape == (120, 63)
    assert np.abs(got - expected).max() <= CEPSTRUM_TOL


@pytest.mark.parametrize("group", SUPPORTED_GROUPS)
def test_batch_equals_clip_by_clip(group: str) -> None:
    frontend = TorchFrontend(group, features=FeatureParams(), audio=AUDIO)
    batch = torch.from_numpy(np.stack(list(SIGNALS.values())))
    together = frontend(batch)
    alone = torch.cat([frontend(batch[i : i + 1]) for i in range(len(batch))])
    # Each clip is its own: its dB floor follows its own peak, not the batch's (silence stays at -100 dB).
    torch.testing.assert_close(together, alone, rtol=1e-6, atol=1e-5)


def frame_scaler(features: FeatureParams) -> dict:
    """A scaler over every default frame row, as scaler.json's ``frames`` entry holds it (JSON round trip)."""
    names = FeatureExtractor(AUDIO, features).layout.frame_names
    rng = np.random.default_rng(3)
    scaler = Scaler(names, rng.normal(-20.0, 15.0, len(names)), rng.uniform(0.5, 20.0, len(names)))
    return json.loads(json.dumps(scaler.to_json()))


@pytest.mark.parametrize("group", SUPPORTED_GROUPS)
def test_scaler_as_the_standardize_stage(group: str) -> None:
    features = FeatureParams()
    saved = frame_scaler(features)
    scaler = Scaler.from_json(saved)
    clips = [SIGNALS["am_noise"], SIGNALS["two_sines"], SIGNALS["quiet"]]
    batch = torch.from_numpy(np.stack(clips))
    raw = TorchFrontend(group, features=features, audio=AUDIO)(batch).numpy()
    scaled = TorchFrontend(group, features=features, audio=AUDIO, scaler=saved)(batch).numpy()
    layout = FeatureExtractor(AUDIO, features).layout
    rows = layout.frame_rows(group)
    # On the same rows, exactly Scaler.transform_frames (the scaler picks the group's rows by name).
    full = np.zeros((len(clips), len(layout.frame_names), raw.shape[2]), np.float32)
    full[:, rows] = raw
    np.testing.assert_array_equal(scaled, scaler.transform_frames(full)[:, rows])
    # And the extractor -> standardize path within the tolerance in units of each row's std.
    ref = np.zeros_like(full)
    ref[:, rows] = extracted(group, features, clips)
    expected = scaler.transform_frames(ref)[:, rows]
    std = scaler.std[rows][None, :, None]
    assert (np.abs(scaled - expected) * std).max() <= TOLERANCE[group] * (1 + 1e-5)


def test_scaler_without_the_group_rows() -> None:
    saved = frame_scaler(only("mfcc", FeatureParams()))
    with pytest.raises(ValueError, match="no row 'lfcc00'.*60 of the group's 60 rows missing"):
        TorchFrontend("lfcc", features=FeatureParams(), audio=AUDIO, scaler=saved)


def test_buffers_stay_out_of_the_state_dict() -> None:
    # A bundle's weights hold what was learned; the front-end is rebuilt from its config, identically.
    features = FeatureParams()
    a = TorchFrontend("lfcc", features=features, audio=AUDIO, scaler=frame_scaler(features))
    b = TorchFrontend("lfcc", features=features, audio=AUDIO, scaler=frame_scaler(features))
    assert a.state_dict() == {}
    model = torch.nn.Sequential(a, torch.nn.Flatten(), torch.nn.LazyLinear(1))
    model(torch.zeros(1, AUDIO.n_samples))
    restored = torch.nn.Sequential(b, torch.nn.Flatten(), torch.nn.LazyLinear(1))
    restored(torch.zeros(1, AUDIO.n_samples))
    restored.load_state_dict(model.state_dict())  # strict: no front-end keys either side
    for (name, x), (_, y) in zip(a.named_buffers(), b.named_buffers()):
        assert torch.equal(x, y), name
    y = torch.from_numpy(SIGNALS["noise"])[None]
    assert torch.equal(model(y), restored(y))


@pytest.mark.parametrize("group", SUPPORTED_GROUPS)
def test_gradients_flow(group: str) -> None:
    y = torch.from_numpy(np.stack([SIGNALS["am_noise"], SIGNALS["silence"]])).requires_grad_()
    frontend = TorchFrontend(group, features=FeatureParams(), audio=AUDIO, scaler=frame_scaler(FeatureParams()))
    out = frontend(y)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(0))
    (out * weights).sum().backward()
    assert torch.isfinite(y.grad).all()
    assert y.grad[0].abs().max() > 0  # the speech-like clip steers the output
    assert not y.grad[1].any()  # a silent clip sits on the power floor: no slope there


def test_autocast_keeps_float32() -> None:
    frontend = TorchFrontend("mfcc", features=FeatureParams(), audio=AUDIO)
    y = torch.from_numpy(np.stack([SIGNALS["chirp"], SIGNALS["am_noise"]]))
    plain = frontend(y)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        cast = frontend(y)
    assert cast.dtype == torch.float32
    assert torch.equal(cast, plain)
    # bfloat16 input is widened first, as float32 audio would be.
    assert frontend(y.bfloat16()).dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("group", SUPPORTED_GROUPS)
def test_cuda_matches_extractor(group: str) -> None:
    features = FeatureParams()
    scaler = frame_scaler(features)
    expected = extracted(group, features, list(SIGNALS.values()))
    frontend = TorchFrontend(group, features=features, audio=AUDIO).cuda()
    y = torch.from_numpy(np.stack(list(SIGNALS.values()))).cuda()
    with torch.autocast(device_type="cuda", dtype=torch.float16):
        got = frontend(y)
    assert got.dtype == torch.float32 and got.device.type == "cuda"
    assert np.abs(got.cpu().numpy() - expected).max() <= TOLERANCE[group]
    scaled = TorchFrontend(group, features=features, audio=AUDIO, scaler=scaler).cuda()(y)
    cpu = TorchFrontend(group, features=features, audio=AUDIO, scaler=scaler)(y.cpu())
    std = torch.tensor(Scaler.from_json(scaler).std)[FeatureExtractor(AUDIO, features).layout.frame_rows(group)]
    assert ((scaled.cpu() - cpu).abs() * std[None, :, None].float()).max() <= TOLERANCE[group]
