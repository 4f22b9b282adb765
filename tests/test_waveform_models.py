"""Waveform model kinds end to end: the store feeds training (crops, augmentation, losses),
bundles load and score, `train.init_from` fine-tunes, `deepfake-audio import aasist` makes a
bundle, and the torch LFCC front-end scores like the features path."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from deepfake_audio.bundle import bundle_config, load_bundle, save_config  # noqa: E402
from deepfake_audio.errors import ParamError  # noqa: E402
from deepfake_audio.inputs import InputSource, load_inputs  # noqa: E402
from deepfake_audio.models import FitContext, check_model_params, get_model_kind  # noqa: E402
from deepfake_audio.models.waveform import AasistParams, RawNet2Params  # noqa: E402
from deepfake_audio.params import (  # noqa: E402
    AudioParams,
    FeatureParams,
    ModelParams,
    TrainParams,
    WaveAugmentParams,
    as_dict,
    from_dict,
    params_from_dict,
)
from deepfake_audio.predict import Predictor  # noqa: E402
from deepfake_audio.training import init_weights  # noqa: E402
from deepfake_audio.waveforms import write_store  # noqa: E402
from tests.conftest import make_corpus  # noqa: E402

TINY_RAWNET2 = RawNet2Params(
    n_samples=4000, sinc_filters=8, sinc_kernel=31, channels=(8, 8, 16, 16), gru_units=16, fc_units=16
)
TINY_AASIST = AasistParams(
    n_samples=8000, sinc_filters=20, sinc_kernel=32, channels=((1, 8), (8, 8), (8, 8), (8, 8)), gat_dims=(8, 8)
)
AUDIO = AudioParams(sample_rate=16000, duration_s=1.0)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    """A tiny corpus (6 speakers, 4 + 4 one-second clips each) split 4/1/1 speakers, in a store."""
    root = tmp_path_factory.mktemp("wavecorpus")
    labels = pd.read_csv(make_corpus(root))
    speakers = sorted(labels["speaker"].unique())
    split = {s: "train" for s in speakers[:4]} | {speakers[4]: "dev", speakers[5]: "test"}
    manifest = labels.assign(
        utt_id=[f"u{i:03d}" for i in range(len(labels))],
        split=labels["speaker"].map(split),
        source="tiny",
        path=labels["path"],
    )
    out = root / "waveforms"
    write_store(manifest, raw_dir=root, out_dir=out, audio=AUDIO, n_jobs=1, rejects_path=root / "rejects.csv")
    return manifest, out


def _fit(kind_name: str, section, manifest: pd.DataFrame, waveforms: Path, out: Path, **train) -> dict:
    kind = get_model_kind(kind_name)
    train_params = TrainParams(
        **{"models": {kind_name: kind.params_section}, "epochs": 2, "batch_size": 8, "device": "cpu", **train}
    )
    source = InputSource(waveforms=waveforms, n_samples=kind.crop_samples(section, AUDIO))
    data = load_inputs(manifest, input=kind.input, source=source, splits=["train", "dev", "test"])
    base = {"audio": as_dict(AUDIO), "features": as_dict(FeatureParams()), "scaler": {}}
    out.mkdir(parents=True, exist_ok=True)
    summary = kind.fit(data, FitContext(section=section, train=train_params, out_dir=out, key="k", config=base))
    summary.pop("train_samples_per_s")
    summary.pop("data_wait_share")
    config = bundle_config(
        kind,
        summary,
        section=section,
        train_params=train_params,
        audio=AUDIO,
        features=FeatureParams(),
        scaler={},
        n_samples=source.n_samples,
    )
    save_config(out, config)
    return data


def test_waveform_kinds_read_audio_crops_from_their_own_sections() -> None:
    for name, section in (("aasist", "aasist"), ("rawnet2", "rawnet2"), ("lcnn_wave", "model")):
        kind = get_model_kind(name)
        assert kind.input == "waveform" and kind.params_section == section
    assert get_model_kind("aasist").crop_samples(AasistParams(), AUDIO) == 64600
    assert get_model_kind("lcnn_wave").crop_samples(ModelParams(), AUDIO) == AUDIO.n_samples  # frames match features


def test_bad_waveform_params_name_the_key() -> None:
    with pytest.raises(ParamError, match=r"aasist\.channels"):
        from_dict(AasistParams, {"channels": [[1, 32], [16, 32]]}, prefix="aasist")
    with pytest.raises(ParamError, match=r"rawnet2\.sinc_kernel"):
        from_dict(RawNet2Params, {"sinc_kernel": 1024}, prefix="rawnet2")
    raw = {"train": {"models": {"cnn_lstm": "model"}, "loss": "oc_softmax"}}
    with pytest.raises(ParamError, match=r"train\.loss.*cnn_lstm trains with cross_entropy"):
        check_model_params(params_from_dict(raw))
    ok = {"train": {"models": {"rawnet2": "rawnet2"}, "loss": "oc_softmax"}, "rawnet2": {"n_samples": 16000}}
    assert list(check_model_params(params_from_dict(ok))) == ["rawnet2"]


@pytest.mark.parametrize("loss", ["cross_entropy", "oc_softmax"])
def test_rawnet2_trains_on_store_crops_with_augmentation_and_its_bundle_scores_alike(
    store: tuple[pd.DataFrame, Path], tmp_path: Path, loss: str
) -> None:
    manifest, waveforms = store
    augment = WaveAugmentParams(prob=1.0, max_ops=2, ops=("rawboost", "noise", "speed"))
    data = _fit("rawnet2", TINY_RAWNET2, manifest, waveforms, tmp_path / "b", loss=loss, augment=augment)
    bundle = load_bundle(tmp_path / "b")
    assert bundle.config["n_samples"] == 4000 and bundle.config["input"] == "waveform"
    test = data["test"]
    scores = bundle.score(test.x)
    assert scores.shape == (len(test.ids),) and np.isfinite(scores).all()
    if loss == "oc_softmax":  # cosines with the bona fide centre
        assert np.all(np.abs(scores) <= 1 + 1e-6)
    # predict reads the files itself: the same score as the store's fixed crop, within int16 rounding
    predictor = Predictor.load(tmp_path / "b")
    root = waveforms.parent
    paths = [root / p for p in manifest.set_index("utt_id").loc[test.ids, "path"]]
    rows = predictor.predict_files(paths, scope="first", vad=False)
    np.testing.assert_allclose([r["score"] for r in rows], scores, atol=1e-4)


def test_the_same_seed_trains_the_same_weights_with_augmentation(store: tuple[pd.DataFrame, Path], tmp_path: Path):
    manifest, waveforms = store
    augment = WaveAugmentParams(prob=1.0, ops=("rawboost", "codec"), codecs=("mulaw",))
    states = []
    for run in ("a", "b"):
        _fit("rawnet2", TINY_RAWNET2, manifest, waveforms, tmp_path / run, augment=augment, epochs=1)
        states.append(torch.load(tmp_path / run / "weights.pt", weights_only=True))
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_init_from_loads_a_bundle_and_refuses_other_weights(store: tuple[pd.DataFrame, Path], tmp_path: Path):
    manifest, waveforms = store
    _fit("rawnet2", TINY_RAWNET2, manifest, waveforms, tmp_path / "base", epochs=1)
    net = get_model_kind("rawnet2").build(1, 4000, TINY_RAWNET2, {"audio": as_dict(AUDIO)})
    assert "initialised" in init_weights(net, tmp_path / "base")
    saved = torch.load(tmp_path / "base" / "weights.pt", weights_only=True)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in saved.items())
    wider = dataclasses.replace(TINY_RAWNET2, fc_units=32)
    other = get_model_kind("rawnet2").build(1, 4000, wider, {"audio": as_dict(AUDIO)})
    with pytest.raises(ValueError, match=r"fc\.bias has shape \(16,\), this model \(32,\)"):
        init_weights(other, tmp_path / "base")
    with pytest.raises(ValueError, match="no such bundle folder"):
        init_weights(net, tmp_path / "missing")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a torch state dict"):
        init_weights(net, tmp_path / "junk.pt")
    # fine-tuning: training starts from those weights (an OC-Softmax head takes the bare network's)
    _fit("rawnet2", TINY_RAWNET2, manifest, waveforms, tmp_path / "ft", epochs=1, init_from=str(tmp_path / "base"))
    _fit(
        "rawnet2",
        TINY_RAWNET2,
        manifest,
        waveforms,
        tmp_path / "ft_oc",
        epochs=1,
        loss="oc_softmax",
        init_from=str(tmp_path / "base" / "weights.pt"),
    )
    assert load_bundle(tmp_path / "ft_oc").model.net.fc.weight.shape == (16, 16)


def test_aasist_trains_a_small_size_and_scores(store: tuple[pd.DataFrame, Path], tmp_path: Path) -> None:
    manifest, waveforms = store
    data = _fit("aasist", TINY_AASIST, manifest, waveforms, tmp_path / "a", epochs=1)
    scores = load_bundle(tmp_path / "a").score(data["dev"].x)
    assert scores.shape == (len(data["dev"].ids),) and np.isfinite(scores).all()


def _random_aasist_l(tmp_path: Path) -> tuple[Path, object]:
    from deepfake_audio.models.aasist import AASIST, AASIST_L_PRESET

    torch.manual_seed(0)
    net = AASIST(**AASIST_L_PRESET).eval()
    path = tmp_path / "AASIST-L.pth"
    torch.save(net.state_dict(), path)
    return path, net


def test_import_aasist_makes_a_bundle_that_scores_the_authors_way(tmp_path: Path, make_wav) -> None:
    from deepfake_audio.cli import main

    path, net = _random_aasist_l(tmp_path)
    assert main(["import", "aasist", str(path), "--out", str(tmp_path / "bundle")]) == 0
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert config["imported"]["variant"] == "AASIST-L" and config["n_samples"] == 64600
    clip = make_wav(name="a.wav", kind="harmonic", duration_s=1.5, sample_rate=16000)
    import soundfile as sf

    y, _ = sf.read(clip, dtype="float32")
    expected = net(torch.from_numpy(np.tile(y, 44)[:64600][None]))[0, 1].item()  # first 64,600 samples, repeated
    got = Predictor.load(tmp_path / "bundle").predict_files([clip], vad=False)[0]["score"]
    assert got == pytest.approx(expected, abs=1e-4)
    # bad input: a clear error, exit 2, nothing written
    (tmp_path / "junk.pth").write_bytes(b"junk")
    assert main(["import", "aasist", str(tmp_path / "junk.pth"), "--out", str(tmp_path / "b2")]) == 2
    assert not (tmp_path / "b2").exists()
    assert main(["import", "aasist", str(path), "--out", str(tmp_path / "bundle")]) == 2  # never overwrites


def test_import_with_a_dev_set_fits_threshold_and_calibration(tmp_path: Path, make_wav) -> None:
    from deepfake_audio.importers import import_aasist

    path, _ = _random_aasist_l(tmp_path)
    rows = [
        {"path": make_wav(name=f"c{i}.wav", kind=kind, duration_s=0.5, seed=i).name, "label": label}
        for i, (kind, label) in enumerate([("harmonic", "bonafide"), ("noise", "spoof")] * 3)
    ]
    dev = Path(make_wav(name="x.wav").parent) / "dev.csv"
    pd.DataFrame(rows).to_csv(dev, index=False)
    config = import_aasist(path, tmp_path / "bundle", dev=dev)
    assert 0 <= config["dev_eer"] <= 1 and config["calibration"]["fitted_on"] == str(dev)


REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "peers" / "aasist"


@pytest.mark.skipif(not (REFERENCE / "AASIST-L.pth").exists(), reason=f"no published AASIST-L weights in {REFERENCE}")
def test_imported_published_aasist_l_predicts_the_reference_scores(tmp_path: Path) -> None:
    from deepfake_audio.importers import import_aasist

    import_aasist(REFERENCE / "AASIST-L.pth", tmp_path / "b")
    ref = pd.read_csv(REFERENCE / "reference_scores.csv").iloc[:4]
    bench = REFERENCE.parents[1] / "bench" / "dev"
    rows = Predictor.load(tmp_path / "b").predict_files([bench / p for p in ref["path"]], scope="first", vad=False)
    np.testing.assert_allclose([r["score"] for r in rows], ref["aasist_l_score"], atol=1e-3)


def test_lcnn_wave_scores_like_an_lcnn_on_extracted_features(make_wav) -> None:
    """The torch LFCC front-end + scaler + LCNN equals extracted features + scaler + the same LCNN."""
    from deepfake_audio.features import FeatureExtractor
    from deepfake_audio.models.neural import LCNN
    from deepfake_audio.models.waveform import FrontendLCNN
    from deepfake_audio.scaling import Scaler

    features = FeatureParams()
    extractor = FeatureExtractor(AUDIO, features)
    import soundfile as sf

    clips = [sf.read(make_wav(kind=k, duration_s=1.0), dtype="float32")[0] for k in ("harmonic", "noise")]
    frames = np.stack([extractor.extract(y)[0] for y in clips])  # (2, rows, frames), every frame group
    names = extractor.layout.frame_names
    scaler = Scaler(names, frames.mean(axis=(0, 2)), frames.std(axis=(0, 2)) + 1.0)
    rows = extractor.layout.frame_rows("lfcc")
    section = ModelParams(conv_channels=8, lstm_units=8)
    torch.manual_seed(0)
    config = {"audio": as_dict(AUDIO), "features": as_dict(features), "scaler": {"frames": scaler.to_json()}}
    wave = FrontendLCNN(section, config).eval()
    lcnn = LCNN(len(rows), frames.shape[2], section).eval()
    lcnn.load_state_dict(wave.net.state_dict())  # an lcnn bundle's weights fit lcnn_wave's network
    with torch.no_grad():
        by_features = lcnn(torch.from_numpy(scaler.transform_frames(frames)[:, rows].astype(np.float32)))
        by_audio = wave(torch.from_numpy(np.stack(clips)))
    torch.testing.assert_close(by_audio, by_features, atol=2e-3, rtol=1e-3)


def test_the_same_seed_gives_the_same_augmented_batch_whatever_the_number_of_workers(
    store: tuple[pd.DataFrame, Path],
) -> None:
    """train.augment as training applies it (every op, codecs included) in 0 and 2 DataLoader workers."""
    from torch.utils.data import DataLoader

    from deepfake_audio.models.waveform import crop_augmenter
    from deepfake_audio.waveforms import WaveformSet, WaveformStore

    manifest, waveforms = store
    train = TrainParams(augment=WaveAugmentParams(prob=1.0, max_ops=3))
    augment = crop_augmenter(train, AUDIO.sample_rate)
    clips = WaveformSet(WaveformStore(waveforms), np.arange(12), n_samples=8000)
    labels = np.arange(12) % 2
    order = [5, 0, 11, 3, 8, 1, 10, 2, 7, 4, 9, 6]

    def batches(num_workers: int, epoch: int, seed: int = 3) -> list[np.ndarray]:
        ds = clips.dataset(labels, seed=seed, train=True, augment=augment)
        ds.set_epoch(epoch)
        return [x.numpy() for x, _ in DataLoader(ds, batch_size=4, sampler=order, num_workers=num_workers)]

    serial, parallel = batches(0, epoch=1), batches(2, epoch=1)
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)
    plain = np.stack([clips.dataset(labels, seed=3, train=True).crop(k) for k in order[:4]])[:, None]
    assert not np.array_equal(serial[0], plain)  # the ops did change the crops
    assert not np.array_equal(serial[0], batches(0, epoch=2)[0])  # fresh draws next epoch
    assert not np.array_equal(serial[0], batches(0, epoch=1, seed=4)[0])


def test_train_augment_is_in_the_training_key_of_waveform_kinds_only(tmp_path: Path) -> None:
    """Turning waveform augmentation on retrains the waveform models and keeps the feature models."""
    from deepfake_audio.bundle import training_key

    (tmp_path / "input").write_bytes(b"x")
    on = TrainParams(augment=WaveAugmentParams(prob=0.5))

    def key(name: str, section, train: TrainParams) -> str:
        kind = get_model_kind(name)
        return training_key(
            kind, section=section, train_params=train, device="cpu", inputs=[tmp_path / "input"], code=[], config={}
        )

    assert key("cnn_lstm", ModelParams(), TrainParams()) == key("cnn_lstm", ModelParams(), on)
    assert key("rawnet2", RawNet2Params(), TrainParams()) != key("rawnet2", RawNet2Params(), on)
