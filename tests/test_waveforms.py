"""The waveform store: what it stores, its layout, rejects, determinism, pickling, crops and the Dataset."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import yaml

from deepfake_audio.audio import load_audio
from deepfake_audio.errors import EmptyAudio
from deepfake_audio.io import read_json
from deepfake_audio.params import AudioParams, ParamError, params_from_dict
from deepfake_audio.waveforms import (
    WaveformDataset,
    WaveformSet,
    WaveformStore,
    fixed_crop,
    random_crop,
    repeat_pad,
    resolve_path,
    shard_name,
    windows,
    write_store,
)
from tests.conftest import BAD_FILE_NAMES, MakeWav

AUDIO = AudioParams(sample_rate=16000, min_duration_s=0.1, max_duration_s=1.0)
REASONS = {  # as the features stage names them (tests/test_features.py)
    "zero_bytes": "empty",
    "truncated": "corrupt",
    "not_audio": "unsupported",
    "nan": "non_finite",
    "inf": "non_finite",
    "silent": "silent",
    "too_short": "too_short",
}


def _manifest(paths: list[Path], prefix: str = "u") -> pd.DataFrame:
    return pd.DataFrame({"utt_id": [f"{prefix}{i:03d}" for i in range(len(paths))], "path": [str(p) for p in paths]})


def _write(manifest: pd.DataFrame, out: Path, **kw) -> dict:
    kw = {"audio": AUDIO, "n_jobs": 1, "chunk_size": 3, **kw}
    return write_store(manifest, raw_dir=out.parent, out_dir=out, rejects_path=out / "rejects.csv", **kw)


@pytest.fixture
def clips(make_wav: MakeWav) -> list[Path]:
    """Eight clips of 0.3 to 1.0 s: 16 kHz mono 16-bit, a 22.05 kHz one, a stereo one, a FLAC, a float one."""
    out = [make_wav(kind="noise", duration_s=0.3 + 0.1 * i, seed=i) for i in range(4)]
    out.append(make_wav(kind="harmonic", duration_s=0.6, sample_rate=22050))
    out.append(make_wav(kind="sine", duration_s=0.5, channels=2))
    out.append(make_wav(kind="harmonic", duration_s=0.7, name="h.flac", seed=3))
    out.append(make_wav(kind="noise", duration_s=0.4, subtype="FLOAT", seed=9))
    return out


@pytest.fixture
def store_dir(clips: list[Path], tmp_path: Path) -> Path:
    _write(_manifest(clips), tmp_path / "store")
    return tmp_path / "store"


# ---------------------------------------------------------------- params


def test_max_duration_param_is_validated() -> None:
    assert params_from_dict({}).audio.max_duration_s == 10.0
    with pytest.raises(ParamError, match=r"audio\.max_duration_s"):
        params_from_dict({"audio": {"max_duration_s": 0}})
    with pytest.raises(ParamError, match=r"audio\.max_duration_s.*min_duration_s"):
        params_from_dict({"audio": {"min_duration_s": 2.0, "max_duration_s": 1.0}})
    repo_params = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))
    assert "max_duration_s" in repo_params["audio"]


# ---------------------------------------------------------------- what is stored


def test_round_trip_equals_the_decoded_audio(clips: list[Path], store_dir: Path) -> None:
    store = WaveformStore(store_dir)
    assert len(store) == len(clips) and store.sample_rate == 16000
    assert store.utt_ids == [f"u{i:03d}" for i in range(len(clips))]
    for i, path in enumerate(clips):
        decoded = load_audio(path, sample_rate=16000)[: AUDIO.max_samples]
        y = store.read(i)
        assert y.dtype == np.int16 and len(y) == len(decoded)
        np.testing.assert_allclose(store.read_float(i), decoded, rtol=0, atol=0.5 / 32768 + 1e-7)
        assert store.read_float(i).dtype == np.float32
    # a 16-bit 16 kHz mono source is stored bit for bit
    for i in range(4):
        pcm, _ = sf.read(clips[i], dtype="int16")
        np.testing.assert_array_equal(store.read(i), pcm)


def test_read_is_a_read_only_view_without_copy(store_dir: Path) -> None:
    store = WaveformStore(store_dir)
    y = store.read(2)
    assert not y.flags.writeable
    assert np.shares_memory(y, store.read(2))  # same mapping, no copy
    with pytest.raises(IndexError):
        store.read(len(store))


def test_clips_keep_their_first_max_duration_seconds(make_wav: MakeWav, tmp_path: Path) -> None:
    long = make_wav(kind="noise", duration_s=2.0, seed=5)
    _write(_manifest([long]), tmp_path / "store", audio=AudioParams(max_duration_s=0.75))
    store = WaveformStore(tmp_path / "store")
    pcm, _ = sf.read(long, dtype="int16")
    assert len(store.read(0)) == 12000
    np.testing.assert_array_equal(store.read(0), pcm[:12000])
    assert read_json(tmp_path / "store" / "meta.json")["max_duration_s"] == 0.75


def test_index_and_offsets_across_shards(make_wav: MakeWav, tmp_path: Path) -> None:
    paths = [make_wav(kind="noise", duration_s=0.2 + 0.05 * (i % 5), seed=i) for i in range(12)]
    shard_mb = 20000 * 2 / 2**20  # 20,000 samples: three or four clips per shard
    s = _write(_manifest(paths), tmp_path / "store", shard_mb=shard_mb)
    root = tmp_path / "store"
    index = pq.read_table(root / "index.parquet")
    assert index.column_names == ["utt_id", "shard", "offset", "n_samples"]
    assert [str(t) for t in index.schema.types] == ["string", "int32", "int64", "int64"]
    df = index.to_pandas()
    assert list(df["utt_id"]) == [f"u{i:03d}" for i in range(12)]  # manifest order
    assert s["n_shards"] == df["shard"].nunique() >= 3
    assert list(df["shard"]) == sorted(df["shard"])  # written sequentially
    for shard, rows in df.groupby("shard"):
        expected = np.concatenate([[0], np.cumsum(rows["n_samples"])[:-1]])
        np.testing.assert_array_equal(rows["offset"], expected)  # back to back, no gaps
        size = (root / shard_name(shard)).stat().st_size
        assert size == 2 * rows["n_samples"].sum() <= shard_mb * 2**20
    store = WaveformStore(root)
    for i, path in enumerate(paths):  # every clip reads back from its own shard
        np.testing.assert_array_equal(store.read(i), sf.read(path, dtype="int16")[0])


def test_a_clip_longer_than_a_shard_gets_its_own(make_wav: MakeWav, tmp_path: Path) -> None:
    paths = [make_wav(kind="noise", duration_s=d, seed=i) for i, d in enumerate((0.2, 0.8, 0.2))]
    s = _write(_manifest(paths), tmp_path / "store", shard_mb=10000 * 2 / 2**20)
    df = pd.read_parquet(tmp_path / "store" / "index.parquet")
    assert s["n_shards"] == 3 and list(df["shard"]) == [0, 1, 2]
    np.testing.assert_array_equal(WaveformStore(tmp_path / "store").read(1), sf.read(paths[1], dtype="int16")[0])


def test_bad_files_are_rejected_with_the_features_reasons(
    bad_files: dict[str, Path], make_wav: MakeWav, tmp_path: Path
) -> None:
    good = make_wav(kind="sine", duration_s=0.5)
    manifest = pd.DataFrame(
        {"utt_id": ["good", *(f"bad/{n}" for n in BAD_FILE_NAMES)], "path": [str(good), *map(str, bad_files.values())]}
    )
    s = _write(manifest, tmp_path / "store")
    rejects = pd.read_csv(tmp_path / "store" / "rejects.csv")
    assert list(rejects.columns) == ["utt_id", "path", "reason", "detail"]
    assert dict(zip(rejects["utt_id"], rejects["reason"])) == {f"bad/{n}": REASONS[n] for n in BAD_FILE_NAMES}
    assert s["n_out"] == 1 and s["n_rejected"] == len(BAD_FILE_NAMES)
    assert s["rejects_by_reason"]["non_finite"] == 2
    assert WaveformStore(tmp_path / "store").utt_ids == ["good"]


def test_too_many_rejects_fail_and_keep_the_previous_store(
    bad_files: dict[str, Path], clips: list[Path], store_dir: Path
) -> None:
    before = {p.name: p.read_bytes() for p in store_dir.glob("*.i16")}
    manifest = _manifest([clips[0], bad_files["nan"], bad_files["zero_bytes"]])
    with pytest.raises(RuntimeError, match=r"2 of 3 clips rejected.*non_finite: 1"):
        _write(manifest, store_dir, max_reject_fraction=0.5)
    assert {p.name: p.read_bytes() for p in store_dir.glob("*.i16")} == before
    assert len(WaveformStore(store_dir)) == len(clips)
    assert sorted(pd.read_csv(store_dir / "rejects.csv")["reason"]) == ["empty", "non_finite"]  # says why
    assert not list(store_dir.parent.glob(".store.*"))  # no temporary folder left behind


def test_same_bytes_whatever_n_jobs(clips: list[Path], tmp_path: Path) -> None:
    manifest = _manifest(clips + clips[:3], prefix="c")
    outputs = []
    for n_jobs in (1, 2):
        out = tmp_path / f"store{n_jobs}"
        _write(manifest, out, n_jobs=n_jobs, chunk_size=2, shard_mb=0.05)
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert len([n for n in outputs[0] if n.endswith(".i16")]) > 1
    assert outputs[0] == outputs[1]


def test_duplicate_ids_are_refused(clips: list[Path], tmp_path: Path) -> None:
    manifest = pd.DataFrame({"utt_id": ["a", "b", "a"], "path": [str(p) for p in clips[:3]]})
    with pytest.raises(ValueError, match="'a' appears more than once"):
        _write(manifest, tmp_path / "store")


def test_relative_paths_resolve_against_raw_dir(tmp_path: Path) -> None:
    assert resolve_path("demo/a.wav", Path("data/raw")) == Path("data/raw/demo/a.wav")
    assert resolve_path("data/raw/demo/a.wav", Path("data/raw")) == Path("data/raw/demo/a.wav")
    assert resolve_path(tmp_path / "a.wav", Path("data/raw")) == tmp_path / "a.wav"


def test_a_relative_path_that_names_a_file_is_read_as_written(tmp_path: Path, monkeypatch) -> None:
    """As the features stage reads it: a manifest source's corpus outside data/raw (tests/test_e2e.py)."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.wav").write_bytes(b"")
    monkeypatch.chdir(tmp_path / "corpus")
    assert resolve_path("../corpus/a.wav", Path("data/raw")) == Path("../corpus/a.wav")
    assert resolve_path("../corpus/b.wav", Path("data/raw")) == Path("data/raw/../corpus/b.wav")


# ---------------------------------------------------------------- the store object


def test_pickling_a_store_never_carries_audio(make_wav: MakeWav, tmp_path: Path) -> None:
    paths = [make_wav(kind="noise", duration_s=1.0, seed=i) for i in range(4)]  # 128 kB of audio
    _write(_manifest(paths), tmp_path / "store", shard_mb=0.05)
    store = WaveformStore(tmp_path / "store")
    for i in range(len(store)):
        store.read(i)  # opens every shard's mapping
    assert len(store._maps) == 4
    blob = pickle.dumps(store)
    assert len(blob) < 4000
    copy = pickle.loads(blob)
    assert copy._maps == {}
    np.testing.assert_array_equal(copy.read(3), store.read(3))


def test_mappings_are_remade_so_rss_does_not_grow_with_the_store(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deepfake_audio import waveforms

    monkeypatch.setattr(waveforms, "REMAP_BYTES", 20000)  # about two clips
    store = WaveformStore(store_dir)
    first = store.read(0)
    kept = first.copy()
    old_map = store._maps[0]
    for i in range(1, 4):
        store.read(i)
    assert store._maps[0] is not old_map  # dropped and mapped afresh
    np.testing.assert_array_equal(first, kept)  # a view handed out earlier stays valid
    np.testing.assert_array_equal(store.read(0), kept)


def test_index_of_names_a_missing_id(store_dir: Path) -> None:
    store = WaveformStore(store_dir)
    assert store.index_of("u005") == 5
    np.testing.assert_array_equal(store.indices_of(["u002", "u000", "u002"]), [2, 0, 2])
    with pytest.raises(KeyError, match="nope"):
        store.index_of("nope")


def test_a_folder_without_meta_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="waveform store"):
        WaveformStore(tmp_path)


# ---------------------------------------------------------------- crops


def test_repeat_pad() -> None:
    np.testing.assert_array_equal(repeat_pad(np.array([1, 2, 3]), 7), [1, 2, 3, 1, 2, 3, 1])
    np.testing.assert_array_equal(repeat_pad(np.array([1, 2, 3]), 2), [1, 2])
    assert repeat_pad(np.array([5], np.int16), 4).dtype == np.int16
    with pytest.raises(EmptyAudio):
        repeat_pad(np.array([]), 4)


def test_random_crop_edges(rng: np.random.Generator) -> None:
    y = np.arange(10)
    np.testing.assert_array_equal(random_crop(y, 10, rng), y)  # len == n: the whole clip
    starts = {int(random_crop(y, 9, rng)[0]) for _ in range(200)}
    assert starts == {0, 1}  # both ends of [0, len - n] are reachable
    starts = {int(random_crop(y, 4, rng)[0]) for _ in range(500)}
    assert starts == set(range(7))
    np.testing.assert_array_equal(random_crop(np.array([1, 2]), 5, rng), [1, 2, 1, 2, 1])


def test_fixed_crop() -> None:
    np.testing.assert_array_equal(fixed_crop(np.arange(10), 4), [0, 1, 2, 3])
    np.testing.assert_array_equal(fixed_crop(np.arange(3), 5), [0, 1, 2, 0, 1])


@pytest.mark.parametrize("length", [1, 5, 10, 11, 23, 30, 31])
def test_windows_cover_the_clip(length: int) -> None:
    y = np.arange(length)
    w = windows(y, 10, hop=7)
    assert w.ndim == 2 and w.shape[1] == 10
    if length <= 10:
        assert w.shape[0] == 1
        np.testing.assert_array_equal(w[0], repeat_pad(y, 10))
    else:
        assert set(w.reshape(-1)) == set(y)  # every sample in some window
        np.testing.assert_array_equal(w[0], y[:10])
        np.testing.assert_array_equal(w[-1], y[-10:])  # the last window ends at the clip's end
        assert all(np.array_equal(row, np.arange(row[0], row[0] + 10)) for row in w)  # contiguous
    with pytest.raises(ValueError, match="hop"):
        windows(y, 10, hop=0)


# ---------------------------------------------------------------- Dataset and WaveformSet


def _batches(ds: WaveformDataset, *, num_workers: int, order: list[int]) -> list:
    from torch.utils.data import DataLoader

    loader = DataLoader(ds, batch_size=3, sampler=order, num_workers=num_workers)
    return [(x.numpy(), y.numpy()) for x, y in loader]


def test_dataset_batches_depend_on_seed_and_epoch_not_workers(store_dir: Path) -> None:
    store = WaveformStore(store_dir)
    rows = np.array([0, 1, 2, 3, 4, 5, 6, 7, 3])
    labels = (rows % 2).astype(np.float32)
    ds = WaveformDataset(store, rows, labels, n_samples=4000, seed=7, train=True)
    order = [8, 2, 5, 0, 7, 1, 3, 6, 4]
    ds.set_epoch(1)
    serial = _batches(ds, num_workers=0, order=order)
    parallel = _batches(ds, num_workers=2, order=order)
    assert len(serial) == 3
    for (xs, ys), (xp, yp) in zip(serial, parallel, strict=True):
        assert xs.shape == (3, 1, 4000) and xs.dtype == np.float32 and ys.dtype == np.float32
        np.testing.assert_array_equal(xs, xp)
        np.testing.assert_array_equal(ys, yp)
    np.testing.assert_array_equal(serial[0][1], labels[order[:3]])
    ds.set_epoch(2)
    other = _batches(ds, num_workers=0, order=order)
    assert not np.array_equal(serial[0][0], other[0][0])  # a new epoch, new crops
    # the crop is a window of the clip (clip 1 is 0.4 s = 6,400 samples)
    x = ds[1][0].numpy()[0]
    full = store.read_float(1)
    assert any(np.array_equal(x, full[s : s + 4000]) for s in range(len(full) - 4000 + 1))


def test_eval_mode_uses_the_fixed_crop_and_no_augment(store_dir: Path) -> None:
    store = WaveformStore(store_dir)

    def boom(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise AssertionError("augment called in eval mode")

    ds = WaveformDataset(store, np.arange(3), np.zeros(3), n_samples=16000, seed=0, train=False, augment=boom)
    x, label = ds[0]
    assert tuple(x.shape) == (1, 16000) and float(label) == 0.0
    np.testing.assert_array_equal(x.numpy()[0], repeat_pad(store.read_float(0), 16000))  # 0.3 s clip, padded


def test_augment_gets_the_crop_and_its_length_is_enforced(store_dir: Path) -> None:
    store = WaveformStore(store_dir)
    seen = []

    def shorten(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        seen.append((x.dtype, x.shape))
        return x[:1000] * 0.5

    ds = WaveformDataset(store, np.arange(4), np.ones(4), n_samples=3000, seed=1, train=True, augment=shorten)
    x = ds[2][0].numpy()[0]
    assert seen == [(np.float32, (3000,))]
    assert x.shape == (3000,)
    np.testing.assert_array_equal(x[1000:2000], x[:1000])  # repeat-padded back


def test_dataset_rejects_bad_rows(store_dir: Path) -> None:
    store = WaveformStore(store_dir)
    with pytest.raises(IndexError, match="rows"):
        WaveformDataset(store, np.array([0, 99]), np.zeros(2), n_samples=10, seed=0, train=True)
    with pytest.raises(ValueError, match="one length"):
        WaveformDataset(store, np.array([0, 1]), np.zeros(3), n_samples=10, seed=0, train=True)


def test_waveform_set_indexing(store_dir: Path) -> None:
    store = WaveformStore(store_dir)
    ws = WaveformSet.from_ids(store, ["u001", "u004", "u006"], n_samples=8000)
    assert len(ws) == 3 and ws.shape == (3, 1, 8000)
    sub = ws[np.array([2, 2, 0])]
    assert isinstance(sub, WaveformSet) and list(sub.rows) == [6, 6, 1]
    assert len(ws[[]]) == 0
    assert list(ws[np.array([True, False, True])].rows) == [1, 6]
    block = ws[1:3]
    assert isinstance(block, np.ndarray) and block.shape == (2, 1, 8000) and block.dtype == np.float32
    np.testing.assert_array_equal(block[1, 0], fixed_crop(store.read_float(6), 8000))
    assert ws[0].shape == (1, 8000)
    ds = sub.dataset(np.array([1, 1, 0]), seed=3, train=False)
    np.testing.assert_array_equal(ds[2][0].numpy(), ws[0])


# ---------------------------------------------------------------- the stage


def test_stage_writes_the_store_and_rejects(bad_files: dict[str, Path], make_wav: MakeWav, tmp_path: Path) -> None:
    from stages.waveforms import main

    raw = tmp_path / "raw"
    good = [make_wav(kind="noise", duration_s=0.5, seed=i, name=f"raw/g{i}.wav") for i in range(5)]
    rel = [p.relative_to(raw).as_posix() for p in good]  # relative to --raw
    manifest = pd.DataFrame(
        {
            "utt_id": [f"g{i}" for i in range(5)] + ["bad"],
            "path": rel + [str(bad_files["zero_bytes"])],
            "label": "bonafide",
            "split": "train",
        }
    )
    manifest.to_parquet(tmp_path / "manifest.parquet")
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"audio": {"max_duration_s": 0.25}, "features": {"n_jobs": 1, "max_reject_fraction": 0.2}}),
        encoding="utf-8",
    )
    out = tmp_path / "waveforms"
    argv = ["--manifest", str(tmp_path / "manifest.parquet"), "--raw", str(raw), "--out", str(out)]
    main([*argv, "--params", str(params)])
    store = WaveformStore(out)
    assert store.utt_ids == [f"g{i}" for i in range(5)]
    assert set(store.n_samples) == {4000}
    np.testing.assert_array_equal(store.read(3), sf.read(good[3], dtype="int16")[0][:4000])
    assert pd.read_csv(out / "rejects.csv")[["utt_id", "reason"]].values.tolist() == [["bad", "empty"]]
    assert sorted(p.name for p in out.iterdir()) == [
        "index.parquet",
        "meta.json",
        "rejects.csv",
        "shard-00000.i16",
    ]
