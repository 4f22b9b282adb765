"""Tests for deepfake_audio.examples: example log-mel spectrogram PNGs per class and attack."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepfake_audio import examples
from deepfake_audio.features import FeatureExtractor
from deepfake_audio.params import AudioParams, FeatureParams, MfccParams
from tests.conftest import make_corpus, synth, write_signal

# n_mels other than the default 64, so a hard-coded band count shows up in the tests.
AUDIO = AudioParams(sample_rate=16000, duration_s=1.0)
FEATURES = FeatureParams(n_fft=512, hop_length=256, n_mels=48, mfcc=MfccParams(n_mfcc=20))
SPLIT_OF_SPEAKER = {
    "spk00": "test",
    "spk01": "test",
    "spk02": "dev",
    "spk03": "train",
    "spk04": "train",
    "spk05": "eval:heldout",
}
EXPECTED_NAMES = ["bonafide.png", "A01.png", "A02.png", "overview.png"]


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    return FeatureExtractor(AUDIO, FEATURES)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """6 speakers x (4 bona fide + 2 A01 + 2 A02), splits by speaker as in ``SPLIT_OF_SPEAKER``."""
    root = tmp_path_factory.mktemp("examples_corpus")
    labels = pd.read_csv(make_corpus(root, n_speakers=6, per_speaker=4, seed=5))
    return pd.DataFrame(
        {
            "utt_id": ["tiny/" + Path(p).stem for p in labels["path"]],
            "path": [str(root / p) for p in labels["path"]],
            "label": labels["label"],
            "speaker": labels["speaker"],
            "attack": labels["attack"],
            "source": "tiny",
            "duration_s": 1.0,
            "split": labels["speaker"].map(SPLIT_OF_SPEAKER),
        }
    )


def _draw_and_capture(manifest: pd.DataFrame, out_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Run write_examples, recording what each figure drew just before it is saved."""
    captured: dict[str, dict] = {}
    real_save = examples._save

    def spy(fig, path):
        panels = [
            {
                "utt_id": im.get_label(),
                "data": np.array(im.get_array()),
                "cmap": im.get_cmap().name,
                "xlabel": ax.get_xlabel(),
                "ylabel": ax.get_ylabel(),
            }
            for ax in fig.axes
            for im in ax.images
        ]
        labels = [ax.get_ylabel() for ax in fig.axes if not ax.images]
        captured[Path(path).name] = {"panels": panels, "colorbar_labels": labels, "title": fig.get_suptitle()}
        real_save(fig, path)

    monkeypatch.setattr(examples, "_save", spy)
    written = examples.write_examples(manifest, audio=AUDIO, features=FEATURES, out_dir=out_dir)
    return {"written": written, "captured": captured}


@pytest.fixture(scope="module")
def first_run(manifest: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out_dir = tmp_path_factory.mktemp("examples_out") / "plots" / "examples"
    with pytest.MonkeyPatch.context() as mp:
        run = _draw_and_capture(manifest, out_dir, mp)
    run["out_dir"] = out_dir
    run["bytes"] = {p.name: p.read_bytes() for p in run["written"]}
    return run


# ---------------------------------------------------------------- files


def test_writes_one_png_per_group_and_overview(first_run: dict) -> None:
    assert [p.name for p in first_run["written"]] == EXPECTED_NAMES
    assert sorted(p.name for p in first_run["out_dir"].iterdir()) == sorted(EXPECTED_NAMES)
    for data in first_run["bytes"].values():
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert b"Software" not in data  # no metadata that would differ between versions/runs


def test_png_dimensions_sane(first_run: dict) -> None:
    from matplotlib.image import imread

    for path in first_run["written"]:
        img = imread(path)
        assert img.ndim == 3 and img.shape[2] in (3, 4), (path.name, img.shape)
        height, width = img.shape[:2]
        assert 200 <= height <= 4000 and 300 <= width <= 4000, (path.name, img.shape)
        assert float(img[..., :3].std()) > 0.05, f"{path.name} is (nearly) one colour"
    # A group figure is one row of per_group=2 panels: clearly wider than tall.
    group_img = imread(first_run["out_dir"] / "A01.png")
    assert group_img.shape[1] > 1.8 * group_img.shape[0]


def test_figures_are_labelled(first_run: dict) -> None:
    cap = first_run["captured"]
    assert set(cap) == set(EXPECTED_NAMES)
    assert cap["A01.png"]["title"] == "A01 (spoof) - log-mel, 48 bands"
    assert cap["bonafide.png"]["title"] == "bona fide - log-mel, 48 bands"
    assert "48 bands" in cap["overview.png"]["title"]
    for name, fig in cap.items():
        n_panels = 3 if name == "overview.png" else 2
        assert len(fig["panels"]) == n_panels, name
        assert {p["cmap"] for p in fig["panels"]} == {"magma"}
        assert fig["panels"][0]["xlabel"] == "Time (s)"
        assert fig["panels"][0]["ylabel"].startswith("Frequency (Hz")
        assert fig["colorbar_labels"] == ["Log-mel power (dB)"], name  # one shared colour bar
    overview = [p["utt_id"] for p in cap["overview.png"]["panels"]]
    firsts = [cap[n]["panels"][0]["utt_id"] for n in EXPECTED_NAMES[:-1]]
    assert overview == firsts


def test_drawn_data_is_the_feature_log_mel(
    first_run: dict, manifest: pd.DataFrame, extractor: FeatureExtractor
) -> None:
    path_of = dict(zip(manifest["utt_id"], manifest["path"]))
    n_frames = 1 + AUDIO.n_samples // FEATURES.hop_length
    for fig in first_run["captured"].values():
        for panel in fig["panels"]:
            expected = examples.log_mel(extractor, extractor.load(path_of[panel["utt_id"]]))
            assert panel["data"].shape == (FEATURES.n_mels, n_frames)
            np.testing.assert_array_equal(panel["data"], expected)


def test_log_mel_matches_features_and_librosa(extractor: FeatureExtractor) -> None:
    import librosa

    y = synth("harmonic", n_samples=AUDIO.n_samples, sample_rate=AUDIO.sample_rate, seed=3)
    got = examples.log_mel(extractor, y)
    assert got.dtype == np.float32 and got.shape == (FEATURES.n_mels, 1 + AUDIO.n_samples // FEATURES.hop_length)
    # The features' own log-mel statistics (logmelNNN_mean/std) are computed from these values.
    _, utt = extractor.extract(y)
    names = extractor.layout.utterance_names
    means = utt[[names.index(f"logmel{i:03d}_mean") for i in range(FEATURES.n_mels)]]
    stds = utt[[names.index(f"logmel{i:03d}_std") for i in range(FEATURES.n_mels)]]
    np.testing.assert_allclose(got.mean(axis=1), means, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(got.std(axis=1), stds, rtol=1e-6, atol=1e-4)
    # And independently, librosa's own mel spectrogram with the same settings.
    ref = librosa.power_to_db(
        librosa.feature.melspectrogram(
            y=y,
            sr=AUDIO.sample_rate,
            n_fft=FEATURES.n_fft,
            hop_length=FEATURES.hop_length,
            n_mels=FEATURES.n_mels,
            fmin=FEATURES.fmin,
            power=2.0,
        )
    )
    np.testing.assert_allclose(got, ref, atol=1e-3)


# ---------------------------------------------------------------- determinism and cleanup


def test_rerun_is_byte_identical_and_removes_stale_pngs(
    first_run: dict, manifest: pd.DataFrame, tmp_path: Path
) -> None:
    out_dir = tmp_path / "examples"
    shutil.copytree(first_run["out_dir"], out_dir)
    (out_dir / "A03.png").write_bytes(first_run["bytes"]["A01.png"])  # an attack no longer present
    (out_dir / "notes.txt").write_text("not a figure\n", encoding="utf-8")
    written = examples.write_examples(manifest, audio=AUDIO, features=FEATURES, out_dir=out_dir)
    assert [p.name for p in written] == EXPECTED_NAMES
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(EXPECTED_NAMES + ["notes.txt"])
    assert {p.name: p.read_bytes() for p in written} == first_run["bytes"]


def test_independent_of_row_order(first_run: dict, manifest: pd.DataFrame, tmp_path: Path) -> None:
    shuffled = manifest.sample(frac=1.0, random_state=7).reset_index(drop=True)
    assert not shuffled["utt_id"].equals(manifest["utt_id"])
    written = examples.write_examples(shuffled, audio=AUDIO, features=FEATURES, out_dir=tmp_path)
    assert {p.name: p.read_bytes() for p in written} == first_run["bytes"]


# ---------------------------------------------------------------- choice of clips


def _chosen(manifest: pd.DataFrame, extractor: FeatureExtractor, **kw) -> dict[str, list]:
    chosen, _ = examples.choose_examples(manifest, extractor=extractor, **kw)
    return chosen


def test_prefers_test_then_dev_then_train_never_eval(manifest: pd.DataFrame, extractor: FeatureExtractor) -> None:
    # A01 has 4 test, 2 dev, 4 train and 2 eval clips; ask for more than all non-eval clips.
    chosen = _chosen(manifest, extractor, per_group=12)
    assert [ex.split for ex in chosen["A01"]] == ["test"] * 4 + ["dev"] * 2 + ["train"] * 4
    assert [ex.split for ex in _chosen(manifest, extractor, per_group=2)["bonafide"]] == ["test", "test"]


def test_eval_set_clips_only_for_a_group_with_nothing_else(manifest: pd.DataFrame, extractor: FeatureExtractor) -> None:
    donor = manifest[manifest["attack"] == "A02"].head(3)
    eval_only = donor.assign(utt_id=donor["utt_id"] + "_x", attack="A99", split="eval:heldout")
    chosen = _chosen(pd.concat([manifest, eval_only], ignore_index=True), extractor, per_group=2)
    assert list(chosen) == ["bonafide", "A01", "A02", "A99"]
    assert [ex.split for ex in chosen["A99"]] == ["eval:heldout"] * 2


def test_choice_depends_on_seed_not_on_row_order(manifest: pd.DataFrame, extractor: FeatureExtractor) -> None:
    def picks(df: pd.DataFrame, seed: int) -> dict[str, list[str]]:
        return {g: [ex.utt_id for ex in exs] for g, exs in _chosen(df, extractor, per_group=2, seed=seed).items()}

    reversed_rows = manifest.iloc[::-1].reset_index(drop=True)
    assert picks(manifest, 0) == picks(reversed_rows, 0)
    # 4 bona fide test clips: over a few seeds the first pick must change.
    assert len({picks(manifest, seed)["bonafide"][0] for seed in range(8)}) > 1


def test_skips_unreadable_clip_and_still_fills_group(
    manifest: pd.DataFrame, extractor: FeatureExtractor, tmp_path: Path
) -> None:
    before = [ex.utt_id for ex in _chosen(manifest, extractor, per_group=2)["A01"]]
    broken = manifest.copy()
    bad = tmp_path / "broken.wav"
    bad.write_text("not audio\n" * 50, encoding="utf-8")
    silent = write_signal(tmp_path / "silent.wav", np.zeros(AUDIO.n_samples, dtype=np.float32), AUDIO.sample_rate)
    broken.loc[broken["utt_id"] == before[0], "path"] = str(bad)
    broken.loc[broken["utt_id"] == before[1], "path"] = str(silent)
    chosen, skipped = examples.choose_examples(broken, extractor=extractor, per_group=2)
    after = [ex.utt_id for ex in chosen["A01"]]
    assert len(after) == 2 and not set(after) & set(before)
    assert skipped == {"unsupported": 1, "silent": 1}
    assert [ex.utt_id for ex in chosen["bonafide"]] == [ex.utt_id for ex in _chosen(manifest, extractor)["bonafide"]]


def test_group_without_loadable_clip_gets_no_figure(manifest: pd.DataFrame, tmp_path: Path) -> None:
    # Only A02 (everything else dropped) and all of it unreadable: nothing to draw, stale PNG gone.
    only = manifest[manifest["attack"] == "A02"].assign(path=str(tmp_path / "missing.wav"))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "A02.png").write_bytes(b"old")
    assert examples.write_examples(only, audio=AUDIO, features=FEATURES, out_dir=out_dir) == []
    assert list(out_dir.iterdir()) == []


def test_augmented_copies_are_never_drawn(manifest: pd.DataFrame, extractor: FeatureExtractor) -> None:
    aug = manifest.assign(utt_id=manifest["utt_id"] + "#aug0", aug_seed=1)
    both = pd.concat([manifest.assign(aug_seed=-1), aug], ignore_index=True)
    chosen = _chosen(both, extractor, per_group=3)
    assert not any("#aug" in ex.utt_id for exs in chosen.values() for ex in exs)


# ---------------------------------------------------------------- names and validation


def test_group_names_are_safe_and_unique() -> None:
    raw = ["bonafide", "A01", "vc/star gan (v2)", "vc_star_gan__v2_", "Overview", "no_asr", "no_ASR", ""]
    stems = examples.group_names(raw)
    assert list(stems) == raw
    assert stems["A01"] == "A01" and stems["vc/star gan (v2)"] == "vc_star_gan__v2_"
    values = list(stems.values())
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", v) for v in values)
    assert len({v.lower() for v in values} | {"overview"}) == len(values) + 1  # unique ignoring case
    assert examples.group_names(raw) == stems  # deterministic


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda m: m.drop(columns=["split"]), "split"),
        (lambda m: m.assign(label="fake"), "label"),
    ],
)
def test_bad_manifest_raises(manifest: pd.DataFrame, extractor: FeatureExtractor, change, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        examples.choose_examples(change(manifest), extractor=extractor)


def test_per_group_must_be_positive(manifest: pd.DataFrame, extractor: FeatureExtractor) -> None:
    with pytest.raises(ValueError, match="per_group"):
        examples.choose_examples(manifest, extractor=extractor, per_group=0)


# ---------------------------------------------------------------- the examples stage


def test_stage_draws_the_training_pool_and_reads_only_the_log_mel_keys(
    first_run: dict, manifest: pd.DataFrame, tmp_path: Path
) -> None:
    """stages.examples: the same bytes as write_examples, whatever the feature keys the log-mel does not
    read (other groups, MFCC options, even ones the extractor would reject for these clips), and no
    figure of an attack found only in an eval set."""
    import yaml

    from stages import examples as stage

    eval_only = (
        manifest[manifest["label"] == "spoof"]
        .head(2)
        .assign(attack="A99", split="eval:heldout", utt_id=lambda m: m["utt_id"] + "-heldout")
    )
    path = tmp_path / "split" / "manifest.parquet"
    path.parent.mkdir()
    pd.concat([manifest, eval_only], ignore_index=True).to_parquet(path)
    params = {
        "audio": {"sample_rate": AUDIO.sample_rate, "duration_s": AUDIO.duration_s},
        "features": {
            "n_fft": FEATURES.n_fft,
            "hop_length": FEATURES.hop_length,
            "n_mels": FEATURES.n_mels,
            "frame_groups": ["mfcc", "spectral_contrast"],
            "utterance_groups": ["lfcc"],
            "mfcc": {"n_mfcc": 13, "deltas": 2},
            "lfcc": {"n_lfcc": 10, "n_filters": 12},
            "spectral_contrast": {"n_bands": 7},
        },
    }  # 100 Hz * 2**7 > 8 kHz: unusable at 16 kHz
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    out = tmp_path / "plots" / "examples"
    stage.main(["--manifest", str(path), "--out", str(out), "--params", str(tmp_path / "params.yaml")])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first_run["bytes"]


def test_dvc_yaml_examples_stage_declares_what_it_reads_and_writes() -> None:
    import yaml

    stages = yaml.safe_load((Path(__file__).resolve().parents[1] / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    stage = stages["examples"]
    assert stage["params"] == ["audio", *(f"features.{k}" for k in examples.LOG_MEL_KEYS)]
    assert {"data/raw", "data/split/manifest.parquet"} <= set(stage["deps"])
    assert "--out plots/examples" in stage["cmd"] and stage["plots"] == [{"plots/examples": {"cache": False}}]
    assert "examples" not in stages["features"]["cmd"] and "plots" not in stages["features"]
