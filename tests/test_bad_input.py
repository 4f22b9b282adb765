"""Bad input, end to end through ``extract_features``: every case is handled or rejected with a reason.

The issue's list: a zero-byte file, a truncated header, a non-audio file, NaN or inf samples,
all-zero audio, a clip shorter than one frame, 8 kHz audio, stereo, 24-bit, mp3, ogg and a
10-minute file. Each is either *handled* (resampled, downmixed, cropped: it is in both Parquet
files with the right shape and finite values) or *rejected* (one row of ``rejects.csv`` with a
stable reason slug). The stage fails only above ``features.max_reject_fraction``, naming the top
reasons. ``tests/test_audio.py`` covers the same files one call at a time; this file covers them
through the stage, next to each other in one manifest.

Decisions recorded here: all-zero audio is rejected as ``silent`` (digital silence carries no
evidence either way); a clip shorter than one frame is ``too_short`` under ``min_duration_s``
and is tile-padded to the clip length when ``min_duration_s`` is 0.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from deepfake_audio import features as features_module
from deepfake_audio.errors import AudioError
from deepfake_audio.features import extract_features, read_frames
from deepfake_audio.params import SEQUENCE_GROUPS, AudioParams, FeatureParams
from tests.conftest import synth, write_signal

SR = 16000
AUDIO = AudioParams(sample_rate=SR, duration_s=1.0, min_duration_s=0.1)
# The 1-D sequence groups as frames, log-mel (64 bands) and LFCC added to the statistics: smaller
# than the shipped groups, and the counts below are theirs.
SEQ = {
    "n_mels": 64,
    "frame_groups": SEQUENCE_GROUPS,
    "utterance_groups": ("mfcc", "log_mel", "lfcc") + SEQUENCE_GROUPS[1:],
}
FEATURES = FeatureParams(**SEQ, n_jobs=1, chunk_size=4, max_reject_fraction=1.0)
N_FRAMES = 1 + AUDIO.n_samples // FEATURES.hop_length  # 63
N_FRAME_FEATURES = 151  # the SEQ frame groups (tests/test_features.py counts them)
N_UTTERANCE_FEATURES = 2 * 275
OUTPUTS = ("frames.parquet", "utterances.parquet", "rejects.csv")

TONE_HZ = 440.0
TONE_RMS = 0.5 / np.sqrt(2)  # synth("sine") has peak 0.5
HANDLED = "handled"
MP3_OK = "MP3" in sf.available_formats()


def _tone(n: int, sr: int = SR) -> np.ndarray:
    return synth("sine", n_samples=n, sample_rate=sr)


# ---------------------------------------------------------------- the cases
# Each builder writes one file under ``root`` and returns its path. ``EXPECTED`` says what the stage
# must do with it: HANDLED, or the reason slug of its rejects.csv row. ``TONE`` gives, for handled
# clips that carry a 440 Hz tone, the RMS the decoded, downmixed, resampled and cropped clip must have:
# a wrong rate moves the tone, a wrong downmix or crop changes the level or the centroid.


def _good(root: Path) -> Path:
    return write_signal(root / "good.wav", synth("harmonic", n_samples=SR, sample_rate=SR, seed=1), SR)


def _rate_8k(root: Path) -> Path:
    return write_signal(root / "rate_8k.wav", _tone(8000, 8000), 8000)


def _stereo(root: Path) -> Path:
    """Tone left, silence right: averaging halves the level (taking a channel or summing would not)."""
    y = _tone(SR)
    return write_signal(root / "stereo.wav", np.stack([y, np.zeros_like(y)], axis=1), SR)


def _pcm_24(root: Path) -> Path:
    path = write_signal(root / "pcm_24.wav", _tone(SR), SR, subtype="PCM_24")
    assert sf.info(path).subtype == "PCM_24"
    return path


def _mp3(root: Path) -> Path:
    path = root / "clip.mp3"
    sf.write(path, _tone(SR), SR, format="MP3")
    return path


def _ogg(root: Path) -> Path:
    return write_signal(root / "clip.ogg", _tone(SR), SR)  # Vorbis


def _ten_minutes(root: Path) -> Path:
    """600 s at 16 kHz: a 1 s tone, then low-amplitude noise (about -54 dBFS). 19 MB of PCM_16."""
    rng = np.random.default_rng(0)
    y = rng.integers(-64, 65, size=600 * SR, dtype=np.int16)
    y[:SR] = np.round(_tone(SR) * 32767).astype(np.int16)
    path = root / "ten_minutes.wav"
    sf.write(path, y, SR, subtype="PCM_16")
    assert sf.info(path).frames == 600 * SR
    return path


def _cut_wav(root: Path, name: str, *, keep: float | int) -> Path:
    """A tone WAV cut short: ``keep`` bytes, or that fraction of the file when a float."""
    full = write_signal(root / f"full_{name}.wav", _tone(SR), SR)
    data = full.read_bytes()
    full.unlink()
    path = root / f"{name}.wav"
    path.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    return path


def _truncated_data(root: Path) -> Path:
    """A WAV cut inside its data chunk (an interrupted copy): the samples present decode."""
    return _cut_wav(root, "truncated_data", keep=0.6)


def _zero_bytes(root: Path) -> Path:
    path = root / "zero_bytes.wav"
    path.write_bytes(b"")
    return path


def _truncated_header(root: Path) -> Path:
    """RIFF/WAVE and part of the fmt chunk, no data chunk."""
    return _cut_wav(root, "truncated_header", keep=30)


def _not_audio(root: Path) -> Path:
    path = root / "not_audio.wav"
    path.write_text("this is a text file, not audio\n" * 20, encoding="utf-8")
    return path


def _non_finite(value: float) -> Callable[[Path], Path]:
    def build(root: Path) -> Path:
        y = _tone(SR)
        y[100] = value
        return write_signal(root / f"{value}.wav", y, SR, subtype="FLOAT")

    return build


def _all_zero(root: Path) -> Path:
    return write_signal(root / "all_zero.wav", np.zeros(SR, dtype=np.float32), SR)


def _shorter_than_one_frame(root: Path) -> Path:
    """100 samples (6 ms) is less than one n_fft=512 frame and than min_duration_s=0.1."""
    return write_signal(root / "short.wav", _tone(100), SR)


def _lying_header(root: Path) -> Path:
    """A FLAC whose STREAMINFO claims 2**36 - 1 samples: sf.read would allocate 256 GiB for them."""
    data = bytearray(write_signal(root / "lying_header.flac", _tone(SR), SR).read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # the first metadata block is STREAMINFO
    field = int.from_bytes(data[18:26], "big") | (2**36 - 1)  # its low 36 bits: total samples
    data[18:26] = field.to_bytes(8, "big")
    path = root / "lying_header.flac"
    path.write_bytes(bytes(data))
    assert sf.info(path).frames == 2**36 - 1
    return path


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "good": _good,
    "rate_8k": _rate_8k,
    "stereo": _stereo,
    "pcm_24": _pcm_24,
    "mp3": _mp3,
    "ogg": _ogg,
    "ten_minutes": _ten_minutes,
    "truncated_data": _truncated_data,
    "zero_bytes": _zero_bytes,
    "truncated_header": _truncated_header,
    "not_audio": _not_audio,
    "nan": _non_finite(np.nan),
    "inf": _non_finite(np.inf),
    "all_zero": _all_zero,
    "shorter_than_one_frame": _shorter_than_one_frame,
    "lying_header": _lying_header,
}
EXPECTED = {
    "good": HANDLED,
    "rate_8k": HANDLED,
    "stereo": HANDLED,
    "pcm_24": HANDLED,
    "mp3": HANDLED,
    "ogg": HANDLED,
    "ten_minutes": HANDLED,
    "truncated_data": HANDLED,
    "zero_bytes": "empty",
    "truncated_header": "corrupt",
    "not_audio": "unsupported",
    "nan": "non_finite",
    "inf": "non_finite",
    "all_zero": "silent",
    "shorter_than_one_frame": "too_short",
    "lying_header": "corrupt",
}
TONE = {
    "rate_8k": TONE_RMS,
    "stereo": TONE_RMS / 2,
    "pcm_24": TONE_RMS,
    "mp3": TONE_RMS,
    "ogg": TONE_RMS,
    "ten_minutes": TONE_RMS,
    "truncated_data": TONE_RMS,
}
assert set(BUILDERS) == set(EXPECTED) and set(TONE) <= set(EXPECTED)


def _build(root: Path, names: list[str]) -> pd.DataFrame:
    root.mkdir(parents=True, exist_ok=True)
    rows = [(name, str(BUILDERS[name](root))) for name in names if name != "mp3" or MP3_OK]
    return pd.DataFrame(rows, columns=["utt_id", "path"])


def _run(manifest: pd.DataFrame, out: Path, *, audio: AudioParams = AUDIO, features: FeatureParams = FEATURES) -> dict:
    return extract_features(
        manifest,
        audio=audio,
        features=features,
        frames_path=out / "frames.parquet",
        utterances_path=out / "utterances.parquet",
        rejects_path=out / "rejects.csv",
    )


def _rejects(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "rejects.csv", keep_default_na=False)


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One stage run over the good clip and every case, in the order of ``BUILDERS``."""
    root = tmp_path_factory.mktemp("bad_input")
    manifest = _build(root / "clips", list(BUILDERS))
    out = root / "out"
    summary = _run(manifest, out)
    ids, x = read_frames(out / "frames.parquet")
    names = pq.read_schema(out / "frames.parquet").metadata[b"feature_names"].decode().split(",")
    utt = pq.read_table(out / "utterances.parquet").to_pandas()
    return {
        "root": root,
        "manifest": manifest,
        "summary": summary,
        "out": out,
        "ids": ids,
        "x": x,
        "names": names,
        "utt": utt,
        "rejects": _rejects(out),
    }


# ---------------------------------------------------------------- every case, one stage run


@pytest.mark.parametrize("case", list(BUILDERS))
def test_each_case_is_handled_or_rejected_with_its_reason(stage: dict, case: str) -> None:
    if case == "mp3" and not MP3_OK:
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot write MP3 (needs >= 1.1 with LAME)")
    rejects, ids, utt = stage["rejects"], stage["ids"], stage["utt"]
    path = dict(zip(stage["manifest"]["utt_id"], stage["manifest"]["path"]))[case]
    expected = EXPECTED[case]
    if expected == HANDLED:
        assert case not in set(rejects["utt_id"]), rejects[rejects["utt_id"] == case].to_dict("records")
        assert ids.count(case) == 1
        x = stage["x"][ids.index(case)]
        assert x.shape == (N_FRAME_FEATURES, N_FRAMES) and x.dtype == np.float32
        assert np.isfinite(x).all()
        row = utt.loc[utt["utt_id"] == case].drop(columns="utt_id").to_numpy()
        assert row.shape == (1, N_UTTERANCE_FEATURES)
        assert np.isfinite(row).all()
        if case in TONE:
            names = stage["names"]
            centroid = float(np.median(x[names.index("spectral_centroid")]))
            rms = float(np.median(x[names.index("rms")]))
            assert centroid == pytest.approx(TONE_HZ, rel=0.05), "wrong sample rate or not cropped at the start"
            assert rms == pytest.approx(TONE[case], rel=0.05), "wrong downmix, scale or crop"
    else:
        row = rejects[rejects["utt_id"] == case]
        assert len(row) == 1, f"{case} should be rejected once as {expected!r}"
        assert row["reason"].iloc[0] == expected, row["detail"].iloc[0]
        assert row["path"].iloc[0] == path
        assert path in row["detail"].iloc[0]  # the detail names the file
        assert case not in ids and case not in set(utt["utt_id"])


def test_summary_accounts_for_every_row_in_manifest_order(stage: dict) -> None:
    manifest, summary = stage["manifest"], stage["summary"]
    expected = {name: EXPECTED[name] for name in manifest["utt_id"]}
    handled = [name for name, what in expected.items() if what == HANDLED]
    reasons = Counter(what for what in expected.values() if what != HANDLED)
    assert summary["n_in"] == len(manifest)
    assert summary["n_out"] == len(handled) and summary["n_rejected"] == sum(reasons.values())
    assert summary["rejects_by_reason"] == dict(reasons)
    assert stage["ids"] == handled == stage["utt"]["utt_id"].tolist()  # manifest order, rejects removed
    assert stage["rejects"]["utt_id"].tolist() == [n for n in expected if n not in handled]
    assert list(stage["rejects"].columns) == ["utt_id", "path", "reason", "detail"]
    assert sorted(p.name for p in stage["out"].iterdir()) == sorted(OUTPUTS)  # no temporaries


# ---------------------------------------------------------------- max_reject_fraction


def _top_reasons(message: str) -> list[tuple[str, int]]:
    match = re.search(r"top reasons: (.*?); see ", message)
    assert match, message
    return [(k, int(v)) for k, v in (item.split(": ") for item in match.group(1).split(", "))]


def test_above_the_fraction_raises_listing_top_reasons_with_counts(stage: dict, tmp_path: Path) -> None:
    n, n_rejected = stage["summary"]["n_in"], stage["summary"]["n_rejected"]
    limit = (n_rejected - 1) / n  # one reject too many
    with pytest.raises(RuntimeError) as info:
        _run(
            stage["manifest"],
            tmp_path,
            features=FeatureParams(**SEQ, n_jobs=1, chunk_size=4, max_reject_fraction=limit),
        )
    message = str(info.value)
    assert f"{n_rejected} of {n} clips rejected" in message
    assert f"max_reject_fraction={limit}" in message
    assert str(tmp_path / "rejects.csv") in message
    counts = Counter(_rejects(tmp_path)["reason"])  # written before failing, for inspection
    assert sum(counts.values()) == n_rejected
    top = _top_reasons(message)
    assert len(top) == min(5, len(counts))  # at most five, most frequent first
    assert all(counts[reason] == count for reason, count in top)
    assert [c for _, c in top] == sorted((c for _, c in top), reverse=True)
    left_out = [c for r, c in counts.items() if r not in dict(top)]
    assert all(c <= top[-1][1] for c in left_out)
    assert {"non_finite": 2, "corrupt": 2}.items() <= dict(top).items()


def test_at_the_fraction_passes_and_writes_rejects(stage: dict, tmp_path: Path) -> None:
    """The check is ``>``: a reject fraction equal to the limit passes."""
    n, n_rejected = stage["summary"]["n_in"], stage["summary"]["n_rejected"]
    summary = _run(
        stage["manifest"],
        tmp_path,
        features=FeatureParams(**SEQ, n_jobs=1, chunk_size=4, max_reject_fraction=n_rejected / n),
    )
    assert summary == stage["summary"]
    assert _rejects(tmp_path).equals(stage["rejects"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(OUTPUTS)


# ---------------------------------------------------------------- robustness


def test_unreadable_files_never_abort_the_other_clips(tmp_path: Path) -> None:
    """Garbage of every kind, one in each chunk of two, between good clips: all good clips come out."""
    root = tmp_path / "clips"
    root.mkdir()
    rng = np.random.default_rng(7)
    garbage = {
        "random.wav": rng.bytes(5000),
        "random.mp3": rng.bytes(5000),
        "random.flac": rng.bytes(5000),
        "text.ogg": b"not audio\n" * 30,
        "text.mp3": b"not audio\n" * 30,
        "header_only.flac": b"fLaC",
    }
    for name, data in garbage.items():
        (root / name).write_bytes(data)
    bad_paths = [root / name for name in garbage] + [root / "a_folder.wav", root / "missing.wav", _lying_header(root)]
    (root / "a_folder.wav").mkdir()
    rows = []
    for i, bad in enumerate(bad_paths):
        rows.append((f"bad{i}", str(bad)))
        good = write_signal(root / f"good{i}.wav", synth("harmonic", n_samples=SR // 2, sample_rate=SR, seed=i), SR)
        rows.append((f"good{i}", str(good)))
    manifest = pd.DataFrame(rows, columns=["utt_id", "path"])
    out = tmp_path / "out"
    summary = _run(manifest, out, features=FeatureParams(**SEQ, n_jobs=1, chunk_size=2, max_reject_fraction=1.0))
    ids, x = read_frames(out / "frames.parquet")
    assert ids == [f"good{i}" for i in range(len(bad_paths))]
    assert np.isfinite(x).all()
    rejects = _rejects(out)
    assert rejects["utt_id"].tolist() == [f"bad{i}" for i in range(len(bad_paths))]
    known = {cls.reason for cls in AudioError.__subclasses__()}
    assert set(rejects["reason"]) <= known, rejects[["utt_id", "reason", "detail"]].to_dict("records")
    assert summary["n_rejected"] == len(bad_paths)


def test_clip_shorter_than_one_frame_is_padded_when_min_duration_is_zero(tmp_path: Path) -> None:
    manifest = _build(tmp_path / "clips", ["shorter_than_one_frame"])
    audio = AudioParams(sample_rate=SR, duration_s=1.0, min_duration_s=0.0)
    summary = _run(manifest, tmp_path / "out", audio=audio)
    assert (summary["n_out"], summary["n_rejected"]) == (1, 0)
    ids, x = read_frames(tmp_path / "out" / "frames.parquet")
    assert ids == ["shorter_than_one_frame"] and x.shape == (1, N_FRAME_FEATURES, N_FRAMES)
    assert np.isfinite(x).all()


# ---------------------------------------------------------------- nothing half-written


def _small_manifest(root: Path) -> pd.DataFrame:
    return _build(root, ["good", "zero_bytes", "stereo", "nan", "rate_8k", "not_audio"])


def test_a_crash_mid_stream_leaves_no_partial_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug (not an AudioError) after the first row group was written: the previous outputs stay
    byte for byte, and no temporary file is left (``atomic_path`` renames only on success)."""
    manifest = _small_manifest(tmp_path / "clips")
    out = tmp_path / "out"
    _run(manifest, out, features=FeatureParams(**SEQ, n_jobs=1, chunk_size=2, max_reject_fraction=1.0))
    before = {name: (out / name).read_bytes() for name in OUTPUTS}
    real = features_module._extract_chunk
    calls = []

    def crash_on_second_chunk(extractor, rows):
        calls.append(rows)
        if len(calls) == 2:
            raise ZeroDivisionError("a bug in a worker")
        return real(extractor, rows)

    monkeypatch.setattr(features_module, "_extract_chunk", crash_on_second_chunk)
    with pytest.raises(ZeroDivisionError):
        _run(manifest, out, features=FeatureParams(**SEQ, n_jobs=1, chunk_size=2, max_reject_fraction=1.0))
    assert len(calls) == 2
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    assert {name: (out / name).read_bytes() for name in OUTPUTS} == before


def test_too_many_rejects_write_no_feature_parquet(tmp_path: Path) -> None:
    manifest = _small_manifest(tmp_path / "clips")
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="max_reject_fraction"):
        _run(manifest, out, features=FeatureParams(**SEQ, n_jobs=1, chunk_size=2, max_reject_fraction=0.1))
    assert not (out / "frames.parquet").exists() and not (out / "utterances.parquet").exists()
