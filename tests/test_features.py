"""Tests for deepfake_audio.features: layout contract, equality with naive librosa, the Parquet stage."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepfake_audio.features import CONTRAST_FMIN, FeatureExtractor, extract_features, read_frames
from deepfake_audio.params import SEQUENCE_GROUPS, AudioParams, ContrastParams, FeatureParams, MfccParams
from tests.conftest import BAD_FILE_NAMES, synth, write_bad_files, write_signal

librosa = pytest.importorskip("librosa")

SR = 16000
AUDIO = AudioParams(sample_rate=SR, duration_s=0.5, min_duration_s=0.1)
# Smaller than the shipped groups (params.yaml): the 1-D sequence groups as frames, and log-mel (64
# bands) and LFCC added for the statistics. The layout test below counts these rows.
SEQ = {
    "n_mels": 64,
    "frame_groups": SEQUENCE_GROUPS,
    "utterance_groups": ("mfcc", "log_mel", "lfcc") + SEQUENCE_GROUPS[1:],
}
FEATURES = FeatureParams(**SEQ, n_jobs=1, chunk_size=4, max_reject_fraction=1.0)
REASONS = {
    "zero_bytes": "empty",
    "truncated": "corrupt",
    "not_audio": "unsupported",
    "nan": "non_finite",
    "inf": "non_finite",
    "silent": "silent",
    "too_short": "too_short",
}


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    return FeatureExtractor(AUDIO, FEATURES)


# ---------------------------------------------------------------- layout and shapes


def test_layout_names_and_frame_count(extractor: FeatureExtractor) -> None:
    """The default groups: 40 MFCC + 40 delta + 40 delta-delta, 12 chroma, 6 tonnetz, rms, zcr,
    centroid, bandwidth, 7 contrast, rolloff, flatness; statistics add log-mel and LFCC."""
    p, layout = FEATURES, extractor.layout
    n_frame = 3 * p.mfcc.n_mfcc + p.chroma.n_chroma + 6 + 4 + p.spectral_contrast.n_bands + 1 + 2
    assert len(layout.frame_names) == n_frame == 151
    assert len(set(layout.frame_names)) == n_frame
    n_summarised = n_frame + p.n_mels + 3 * p.lfcc.n_lfcc
    assert len(layout.utterance_names) == 2 * n_summarised == 2 * 275
    assert len(set(layout.utterance_names)) == len(layout.utterance_names)
    assert layout.n_frames == 1 + AUDIO.n_samples // p.hop_length == 32
    assert layout.frame_names[:2] == ("mfcc00", "mfcc01")
    assert layout.frame_names[40:42] == ("mfcc00_delta", "mfcc01_delta")
    assert layout.frame_names[80] == "mfcc00_delta2" and layout.frame_names[-1] == "spectral_flatness"
    assert layout.utterance_names[:4] == ("mfcc00_mean", "mfcc00_std", "mfcc01_mean", "mfcc01_std")
    assert layout.utterance_names[240:242] == ("logmel000_mean", "logmel000_std")
    assert layout.utterance_names[-1] == "spectral_flatness_std"
    assert layout.frame_groups[:120] == ("mfcc",) * 120 and len(layout.frame_groups) == n_frame
    assert len(layout.utterance_groups) == len(layout.utterance_names)


def test_groups_follow_the_registry_order_not_the_params_order() -> None:
    a = FeatureExtractor(AUDIO, FeatureParams(frame_groups=("zcr", "rms"), utterance_groups=("rms", "log_mel")))
    b = FeatureExtractor(AUDIO, FeatureParams(frame_groups=("rms", "zcr"), utterance_groups=("log_mel", "rms")))
    assert a.layout == b.layout
    assert a.layout.frame_names == ("rms", "zcr")
    assert a.layout.utterance_names[0] == "logmel000_mean" and a.layout.utterance_names[-1] == "rms_std"


def test_frame_only_and_utterance_only_groups() -> None:
    ex = FeatureExtractor(
        AUDIO,
        FeatureParams(n_mels=64, frame_groups=("log_mel",), utterance_groups=("rms",), stats=("mean", "p50", "p90")),
    )
    y = synth("noise", n_samples=AUDIO.n_samples, sample_rate=SR, seed=2)
    frames, utt = ex.extract(y)
    assert frames.shape == (64, ex.layout.n_frames)
    np.testing.assert_array_equal(frames, ex.log_mel(y))
    assert ex.layout.utterance_names == ("rms_mean", "rms_p50", "rms_p90")
    rms = librosa.feature.rms(y=y, frame_length=512, hop_length=256)[0]
    np.testing.assert_allclose(utt, [rms.mean(), np.median(rms), np.percentile(rms, 90)], rtol=1e-6)
    none = FeatureExtractor(AUDIO, FeatureParams(frame_groups=(), utterance_groups=("zcr",)))
    frames, utt = none.extract(y)
    assert frames.shape == (0, none.layout.n_frames) and utt.shape == (2,)


@pytest.mark.parametrize("group, rows", [("lfcc", 60), ("tonnetz", 6), ("spectral_flatness", 1), ("cqt", 84)])
def test_each_optional_group_has_its_rows(group: str, rows: int) -> None:
    audio = AudioParams(sample_rate=SR, duration_s=2.0)  # the CQT's lowest octave wants > 1 s
    ex = FeatureExtractor(audio, FeatureParams(frame_groups=(group,), utterance_groups=()))
    frames, _ = ex.extract(synth("harmonic", n_samples=audio.n_samples, sample_rate=SR, seed=3))
    assert frames.shape == (rows, ex.layout.n_frames) and np.isfinite(frames).all()


def test_spectral_flatness_tells_noise_from_a_tone() -> None:
    ex = FeatureExtractor(AUDIO, FeatureParams(frame_groups=("spectral_flatness",), utterance_groups=()))
    noise, _ = ex.extract(synth("noise", n_samples=AUDIO.n_samples, sample_rate=SR, seed=1))
    tone, _ = ex.extract(synth("sine", n_samples=AUDIO.n_samples, sample_rate=SR))
    assert np.median(noise) > 0.3 > 0.01 > np.median(tone)


def test_lfcc_filterbank_is_linear_triangles() -> None:
    from deepfake_audio.features import linear_filterbank

    bank = linear_filterbank(sample_rate=16000, n_fft=512, n_filters=3)  # edges 0, 2, 4, 6, 8 kHz
    freqs = np.linspace(0, 8000, 257)
    assert bank.shape == (3, 257) and bank.dtype == np.float32
    np.testing.assert_allclose(freqs[bank.argmax(axis=1)], [2000, 4000, 6000])
    assert bank[0, freqs == 1000] == pytest.approx(0.5) and bank[0, freqs >= 4000].max() == 0
    np.testing.assert_allclose(bank.sum(axis=0)[(freqs >= 2000) & (freqs <= 6000)], 1.0, atol=1e-6)


def test_deltas_equal_librosa_delta() -> None:
    ex = FeatureExtractor(AUDIO, FeatureParams(frame_groups=("mfcc",), utterance_groups=()))
    frames, _ = ex.extract(synth("harmonic", n_samples=AUDIO.n_samples, sample_rate=SR, seed=7))
    static = frames[:40]
    np.testing.assert_allclose(frames[40:80], librosa.feature.delta(static, width=9), atol=1e-4)
    np.testing.assert_allclose(frames[80:], librosa.feature.delta(static, width=9, order=2), atol=1e-4)
    assert np.abs(frames[40:80]).max() > 0.1  # not vacuous: the deltas move


def test_deltas_need_nine_frames() -> None:
    short = AudioParams(sample_rate=SR, duration_s=0.1, min_duration_s=0.05)  # 7 frames
    with pytest.raises(ValueError, match="mfcc.deltas needs clips of at least 9 frames"):
        FeatureExtractor(short, FeatureParams(**SEQ))
    FeatureExtractor(
        short, FeatureParams(mfcc=MfccParams(deltas=0), frame_groups=SEQUENCE_GROUPS, utterance_groups=("mfcc", "rms"))
    )


def test_cqt_above_nyquist_is_an_error() -> None:
    with pytest.raises(ValueError, match="features.cqt"):
        FeatureExtractor(
            AudioParams(sample_rate=8000, duration_s=0.5), FeatureParams(frame_groups=("cqt",), utterance_groups=())
        )


@pytest.mark.parametrize("kind", ["sine", "noise", "harmonic"])
def test_extract_shapes_dtypes_finite(extractor: FeatureExtractor, kind: str) -> None:
    y = synth(kind, n_samples=AUDIO.n_samples, sample_rate=SR, seed=4)
    frames, utt = extractor.extract(y)
    layout = extractor.layout
    assert frames.shape == (len(layout.frame_names), layout.n_frames) and frames.dtype == np.float32
    assert utt.shape == (len(layout.utterance_names),) and utt.dtype == np.float32
    assert np.isfinite(frames).all() and np.isfinite(utt).all()


def test_extract_on_mostly_silent_clip_is_finite(extractor: FeatureExtractor) -> None:
    """Frames of digital silence (zero padding) must not produce NaN (0/0 in centroid, chroma...)."""
    y = np.zeros(AUDIO.n_samples, dtype=np.float32)
    y[:800] = synth("sine", n_samples=800, sample_rate=SR)
    frames, utt = extractor.extract(y)
    assert np.isfinite(frames).all() and np.isfinite(utt).all()


def test_utterance_stats_are_mean_and_std_of_frames(extractor: FeatureExtractor) -> None:
    y = synth("harmonic", n_samples=AUDIO.n_samples, sample_rate=SR, seed=5)
    frames, utt = extractor.extract(y)
    layout = extractor.layout
    names = list(layout.utterance_names)
    for i, row in enumerate(layout.frame_names):  # every frame row is also summarised by default
        assert utt[names.index(f"{row}_mean")] == pytest.approx(frames[i].mean(), rel=1e-5, abs=1e-5)
        assert utt[names.index(f"{row}_std")] == pytest.approx(frames[i].std(), rel=1e-5, abs=1e-5)
    logmel = librosa.power_to_db(
        librosa.feature.melspectrogram(
            y=y, sr=SR, n_fft=FEATURES.n_fft, hop_length=FEATURES.hop_length, n_mels=FEATURES.n_mels
        )
    )
    means = [names.index(f"logmel{i:03d}_mean") for i in range(FEATURES.n_mels)]
    np.testing.assert_allclose(utt[means], logmel.mean(axis=1), atol=1e-3)
    np.testing.assert_allclose(utt[[m + 1 for m in means]], logmel.std(axis=1), atol=1e-3)


def test_features_react_to_the_signal(extractor: FeatureExtractor) -> None:
    """Noise has a higher centroid and zero-crossing rate than a 440 Hz tone; louder means more RMS."""
    layout = extractor.layout
    tone, _ = extractor.extract(synth("sine", n_samples=AUDIO.n_samples, sample_rate=SR))
    noise, _ = extractor.extract(synth("noise", n_samples=AUDIO.n_samples, sample_rate=SR))
    quiet, _ = extractor.extract(0.1 * synth("sine", n_samples=AUDIO.n_samples, sample_rate=SR))
    for name in ("spectral_centroid", "zcr"):
        i = layout.frame_names.index(name)
        assert np.median(noise[i]) > 5 * np.median(tone[i])
    centroid = layout.frame_names.index("spectral_centroid")
    assert np.median(tone[centroid]) == pytest.approx(440, rel=0.1)
    rms = layout.frame_names.index("rms")
    np.testing.assert_allclose(quiet[rms], 0.1 * tone[rms], rtol=1e-4)
    chroma_a = layout.frame_names.index("chroma09")  # pitch class A (C = 0)
    assert np.median(tone[chroma_a]) == pytest.approx(1.0)


def test_extract_rejects_wrong_length(extractor: FeatureExtractor) -> None:
    with pytest.raises(ValueError, match=str(AUDIO.n_samples)):
        extractor.extract(np.zeros(AUDIO.n_samples - 1, dtype=np.float32))


def test_too_many_contrast_bands_for_the_rate() -> None:
    """100 Hz * 2**6 = 6.4 kHz is above an 8 kHz clip's Nyquist."""
    with pytest.raises(ValueError, match="spectral_contrast.n_bands"):
        FeatureExtractor(AudioParams(sample_rate=8000), FeatureParams())
    assert CONTRAST_FMIN * 2**5 < 4000
    FeatureExtractor(
        AudioParams(sample_rate=8000, duration_s=0.5), FeatureParams(spectral_contrast=ContrastParams(n_bands=5))
    )


# ---------------------------------------------------------------- units
# Equality of every group with librosa's own calls is tests/test_naive_features.py.


@pytest.fixture(scope="module")
def one_second() -> tuple[FeatureExtractor, dict[str, np.ndarray]]:
    audio = AudioParams(sample_rate=SR, duration_s=1.0)
    ex = FeatureExtractor(audio, FeatureParams())
    clips = {kind: synth(kind, n_samples=audio.n_samples, sample_rate=SR, seed=11) for kind in ("harmonic", "noise")}
    # A clip with a loud half and a quiet half exercises the dB floors.
    mixed = clips["harmonic"].copy()
    mixed[audio.n_samples // 2 :] *= 1e-3
    clips["mixed"] = mixed
    return ex, clips


@pytest.mark.parametrize("clip", ["harmonic", "noise"])
def test_rms_equals_time_domain_rms(one_second, clip: str) -> None:
    """The docs say "root-mean-square amplitude (linear, full scale = 1)": a 0.5-peak sine has RMS 0.354."""
    ex, clips = one_second
    y = clips[clip]
    frames, _ = ex.extract(y)
    got = frames[ex.layout.frame_rows("rms")]
    p = ex.params
    np.testing.assert_allclose(
        got, librosa.feature.rms(y=y, frame_length=p.n_fft, hop_length=p.hop_length), rtol=1e-4, atol=1e-6
    )
    tone, _ = ex.extract(synth("sine", n_samples=len(y), sample_rate=SR))
    inner = tone[ex.layout.frame_rows("rms")][0, 2:-2]
    np.testing.assert_allclose(inner, 0.5 / np.sqrt(2), rtol=0.02)


# ---------------------------------------------------------------- the Parquet stage


def _good_clips(root: Path) -> dict[str, Path]:
    """Usable clips that exercise decoding paths: rates, channels, bit depths, crop and pad."""
    n = AUDIO.n_samples
    clips = {
        "plain": write_signal(root / "plain.wav", synth("harmonic", n_samples=n, sample_rate=SR, seed=1), SR),
        "long": write_signal(root / "long.flac", synth("noise", n_samples=3 * n, sample_rate=SR, seed=2), SR),
        "short": write_signal(root / "short.wav", synth("sine", n_samples=n // 3, sample_rate=SR), SR),
        "rate8k": write_signal(root / "rate8k.wav", synth("harmonic", n_samples=4000, sample_rate=8000, seed=3), 8000),
        "stereo": write_signal(
            root / "stereo.wav",
            np.stack(
                [synth("noise", n_samples=n, sample_rate=SR, seed=4), synth("sine", n_samples=n, sample_rate=SR)],
                axis=1,
            ),
            SR,
        ),
        "pcm24": write_signal(
            root / "pcm24.wav", synth("harmonic", n_samples=n, sample_rate=SR, seed=5), SR, subtype="PCM_24"
        ),
    }
    return clips


def _manifest(good: dict[str, Path], bad: dict[str, Path]) -> pd.DataFrame:
    """Good and bad rows interleaved, so rejects fall inside chunks and row order matters."""
    rows = []
    bad_items = list(bad.items())
    for i, (name, path) in enumerate(good.items()):
        rows.append((f"good/{name}", str(path)))
        if i < len(bad_items):
            rows.append((f"bad/{bad_items[i][0]}", str(bad_items[i][1])))
    rows += [(f"bad/{name}", str(path)) for name, path in bad_items[len(good) :]]
    return pd.DataFrame(rows, columns=["utt_id", "path"])


def _run(manifest: pd.DataFrame, out: Path, features: FeatureParams = FEATURES) -> dict:
    return extract_features(
        manifest,
        audio=AUDIO,
        features=features,
        frames_path=out / "frames.parquet",
        utterances_path=out / "utterances.parquet",
        rejects_path=out / "rejects.csv",
    )


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("features")
    good, bad = _good_clips(root / "good"), write_bad_files(root / "bad")
    manifest = _manifest(good, bad)
    summary = _run(manifest, root / "n1")
    return {"root": root, "good": good, "bad": bad, "manifest": manifest, "summary": summary, "out": root / "n1"}


def test_stage_summary(stage: dict) -> None:
    s = stage["summary"]
    assert s["n_in"] == len(stage["manifest"]) == 13
    assert s["n_out"] == len(stage["good"]) == 6
    assert s["n_rejected"] == len(BAD_FILE_NAMES)
    assert s["rejects_by_reason"] == {
        "non_finite": 2,
        "empty": 1,
        "corrupt": 1,
        "unsupported": 1,
        "silent": 1,
        "too_short": 1,
    }


def test_stage_lists_every_bad_file_with_its_reason(stage: dict) -> None:
    rejects = pd.read_csv(stage["out"] / "rejects.csv", keep_default_na=False)
    assert list(rejects.columns) == ["utt_id", "path", "reason", "detail"]
    got = dict(zip(rejects["utt_id"], rejects["reason"]))
    assert got == {f"bad/{name}": REASONS[name] for name in BAD_FILE_NAMES}
    assert (rejects["detail"] != "").all()
    assert set(rejects["path"]) == {str(p) for p in stage["bad"].values()}


def test_stage_parquet_schemas_and_order(stage: dict, extractor: FeatureExtractor) -> None:
    layout = extractor.layout
    good_ids = [f"good/{name}" for name in stage["good"]]  # manifest order, rejects removed
    utt = pq.read_table(stage["out"] / "utterances.parquet")
    assert utt.column_names == ["utt_id", *layout.utterance_names]
    assert all(utt.schema.field(n).type == pa.float32() for n in layout.utterance_names)
    assert utt.column("utt_id").to_pylist() == good_ids
    frames = pq.read_table(stage["out"] / "frames.parquet")
    assert frames.column_names == ["utt_id", *dict.fromkeys(layout.frame_groups)]  # one column per group
    for group in ("mfcc", "spectral_contrast", "rms"):
        width = len(layout.frame_rows(group)) * layout.n_frames
        assert frames.schema.field(group).type == pa.list_(pa.float32(), width)
    meta = frames.schema.metadata
    assert int(meta[b"n_features"]) == len(layout.frame_names) and int(meta[b"n_frames"]) == layout.n_frames
    assert meta[b"feature_names"].decode().split(",") == list(layout.frame_names)
    # chunk_size=4 over 13 rows: rows are streamed as several row groups, not one.
    assert pq.ParquetFile(stage["out"] / "frames.parquet").num_row_groups > 1


def test_stage_values_equal_direct_extraction(stage: dict, extractor: FeatureExtractor) -> None:
    ids, x = read_frames(stage["out"] / "frames.parquet")
    utt = pq.read_table(stage["out"] / "utterances.parquet").to_pandas().set_index("utt_id")
    assert x.dtype == np.float32
    assert x.shape == (len(stage["good"]), len(extractor.layout.frame_names), extractor.layout.n_frames)
    for i, (name, path) in enumerate(stage["good"].items()):
        frames, stats = extractor.extract(extractor.load(str(path)))
        assert ids[i] == f"good/{name}"
        np.testing.assert_array_equal(x[i], frames)
        np.testing.assert_array_equal(utt.loc[f"good/{name}"].to_numpy(), stats)


def test_read_frames_subset_keeps_requested_order(stage: dict) -> None:
    ids, x = read_frames(stage["out"] / "frames.parquet")
    want = [ids[3], ids[0], ids[5]]
    sub_ids, sub = read_frames(stage["out"] / "frames.parquet", want)
    assert sub_ids == want
    np.testing.assert_array_equal(sub, x[[3, 0, 5]])
    with pytest.raises(KeyError):
        read_frames(stage["out"] / "frames.parquet", ["bad/nan"])


def test_read_frames_picks_groups(stage: dict, extractor: FeatureExtractor) -> None:
    path = stage["out"] / "frames.parquet"
    ids, x = read_frames(path)
    meta = pq.read_schema(path).metadata
    assert meta[b"feature_groups"].decode().split(",") == list(extractor.layout.frame_groups)
    _, picked = read_frames(path, groups=("zcr", "mfcc"))
    rows = extractor.layout.frame_rows("mfcc") + extractor.layout.frame_rows("zcr")  # file order
    np.testing.assert_array_equal(picked, x[:, rows])
    with pytest.raises(ValueError, match="log_mel.*add them to features.frame_groups"):
        read_frames(path, groups=("log_mel",))


def test_too_many_rejects_raise_naming_reasons(stage: dict, tmp_path: Path) -> None:
    strict = FeatureParams(**SEQ, n_jobs=1, chunk_size=4, max_reject_fraction=0.05)
    with pytest.raises(RuntimeError) as info:
        _run(stage["manifest"], tmp_path, strict)
    message = str(info.value)
    assert "7 of 13" in message
    assert "non_finite: 2" in message and "empty: 1" in message
    assert "max_reject_fraction=0.05" in message
    assert str(tmp_path / "rejects.csv") in message
    assert len(pd.read_csv(tmp_path / "rejects.csv")) == 7  # written before failing, for inspection


def test_reject_fraction_at_the_limit_passes(stage: dict, tmp_path: Path) -> None:
    """7 of 13 rejected is 53.8%: a limit of 0.54 passes, the check is ``>``."""
    summary = _run(stage["manifest"], tmp_path, FeatureParams(**SEQ, n_jobs=1, chunk_size=4, max_reject_fraction=0.54))
    assert summary["n_rejected"] == 7


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_outputs_identical_for_any_n_jobs(stage: dict) -> None:
    """Two worker processes write byte-identical files to the single-process run."""
    out = stage["root"] / "n2"
    summary = _run(stage["manifest"], out, FeatureParams(**SEQ, n_jobs=2, chunk_size=4, max_reject_fraction=1.0))
    assert summary == stage["summary"]
    for name in ("frames.parquet", "utterances.parquet", "rejects.csv"):
        assert _sha(out / name) == _sha(stage["out"] / name), name


def test_extraction_leaves_the_callers_environment_alone(stage: dict) -> None:
    """Workers limit their own BLAS threads; the calling process's environment is not edited."""
    before = dict(os.environ)
    _run(
        stage["manifest"], stage["root"] / "env", FeatureParams(**SEQ, n_jobs=2, chunk_size=4, max_reject_fraction=1.0)
    )
    assert dict(os.environ) == before


def test_no_temporary_files_left(stage: dict) -> None:
    assert sorted(p.name for p in stage["out"].iterdir()) == ["frames.parquet", "rejects.csv", "utterances.parquet"]


def test_huge_float_samples_do_not_stop_the_stage(tmp_path: Path) -> None:
    y = 1e20 * synth("sine", n_samples=AUDIO.n_samples, sample_rate=SR)
    path = write_signal(tmp_path / "hot.wav", y, SR, subtype="FLOAT")
    ok = write_signal(tmp_path / "ok.wav", synth("harmonic", n_samples=AUDIO.n_samples, sample_rate=SR), SR)
    manifest = pd.DataFrame({"utt_id": ["hot", "ok"], "path": [str(path), str(ok)]})
    with np.errstate(all="ignore"):
        summary = _run(manifest, tmp_path / "out")
    assert summary["n_out"] + summary["n_rejected"] == 2
    if summary["n_out"] == 2:
        _, x = read_frames(tmp_path / "out" / "frames.parquet")
        assert np.isfinite(x).all()


def test_fast_zcr_rolloff_centroid_bandwidth_match_librosa_on_edge_cases() -> None:
    """The fast versions equal librosa's own calls (bit for bit, but the centroid and bandwidth: 1e-7
    relative), also where they are easiest to get wrong: exact zeros, -0.0, values inside the
    1e-10 zero band, digital silence, a lone spike."""
    import librosa

    from deepfake_audio.features import FeatureExtractor, zero_crossing_rate

    rng = np.random.default_rng(7)
    n = 16000
    y = (rng.standard_normal(n) * 0.1).astype(np.float32)
    y[2000:6000] = 0.0  # digital silence: silent frames
    y[6000:6100:2] = -0.0
    y[7000:7100] = np.float32(5e-11) * np.sign(rng.standard_normal(100)).astype(np.float32)
    y[9000] = 0.9  # a lone spike
    for frame_length, hop_length in ((512, 256), (400, 160), (1024, 512)):
        expected = librosa.feature.zero_crossing_rate(y, frame_length=frame_length, hop_length=hop_length, center=True)
        assert np.array_equal(zero_crossing_rate(y, frame_length=frame_length, hop_length=hop_length), expected)
    ex = FeatureExtractor(AudioParams(duration_s=1.0), FeatureParams())
    mag = np.abs(librosa.stft(y, n_fft=512, hop_length=256, window=ex.window, center=True)).astype(np.float32)
    sr = 16000
    assert (mag.sum(axis=0) == 0).any(), "the test needs silent frames"
    rolloff = librosa.feature.spectral_rolloff(S=mag, sr=sr, n_fft=512, freq=ex.freqs, roll_percent=0.85)
    assert np.array_equal(ex._rolloff(mag), rolloff)
    centroid = librosa.feature.spectral_centroid(S=mag, sr=sr, n_fft=512, freq=ex.freqs)
    bandwidth = librosa.feature.spectral_bandwidth(S=mag, sr=sr, n_fft=512, freq=ex.freqs, centroid=centroid)
    got_c, got_b = ex._centroid_bandwidth(mag)
    np.testing.assert_allclose(got_c, centroid, rtol=1e-7, atol=0)
    np.testing.assert_allclose(got_b, bandwidth, rtol=1e-7, atol=0)
    silent = mag.sum(axis=0) == 0
    assert (got_c[0, silent] == 0).all() and (got_b[0, silent] == 0).all()
    assert np.array_equal(
        ex._contrast(mag),
        librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=512, freq=ex.freqs, n_bands=6, fmin=100.0),
    )
    stft = librosa.stft(y, n_fft=512, hop_length=256, window=ex.window, center=True)
    assert np.array_equal(ex._magnitude(y), np.abs(stft).astype(np.float32))
