"""SSL front-ends and back-ends on tiny randomly initialised wav2vec 2.0, WavLM and HuBERT models.

Every checkpoint here is written with ``save_pretrained`` into a temporary folder and read back by
the real loading code (:mod:`deepfake_audio.frontends.ssl`); nothing is downloaded or faked.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from deepfake_audio.bundle import bundle_config, load_bundle, save_config  # noqa: E402
from deepfake_audio.embeddings import EmbeddingStore, write_store  # noqa: E402
from deepfake_audio.frontends import ssl  # noqa: E402
from deepfake_audio.inputs import InputSource, load_inputs  # noqa: E402
from deepfake_audio.models import FitContext, check_model_params, get_model_kind  # noqa: E402
from deepfake_audio.params import (  # noqa: E402
    AudioParams,
    FeatureParams,
    ParamError,
    SSLParams,
    TrainParams,
    as_dict,
    params_from_dict,
)
from deepfake_audio.predict import Predictor  # noqa: E402
from deepfake_audio.waveforms import write_store as write_waveforms  # noqa: E402
from tests.conftest import make_corpus  # noqa: E402

AUDIO = AudioParams(sample_rate=16000, duration_s=1.0)
N_SAMPLES = 8000  # half-second crops: 24 frames


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ssl")
    return {family: ssl.save_random(root / family, family, seed=1) for family in ssl.FAMILIES}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    """6 speakers of 4 + 4 one-second clips, split 4/1/1 speakers, in a waveform store."""
    root = tmp_path_factory.mktemp("sslcorpus")
    labels = pd.read_csv(make_corpus(root))
    speakers = sorted(labels["speaker"].unique())
    split = {s: "train" for s in speakers[:4]} | {speakers[4]: "dev", speakers[5]: "test"}
    manifest = labels.assign(
        utt_id=[f"u{i:03d}" for i in range(len(labels))], split=labels["speaker"].map(split), source="tiny"
    )
    write_waveforms(
        manifest, raw_dir=root, out_dir=root / "waveforms", audio=AUDIO, n_jobs=1, rejects_path=root / "r.csv"
    )
    return manifest, root / "waveforms"


# ---------------------------------------------------------------- loading


@pytest.mark.parametrize("family", list(ssl.FAMILIES))
def test_each_family_loads_from_its_folder_and_gives_every_hidden_state(checkpoints, family: str) -> None:
    frontend = ssl.load_frontend(str(checkpoints[family]), layer=None, normalize=None)
    assert frontend.model.config.model_type == family
    h = frontend(torch.randn(2, 1, N_SAMPLES))
    assert h.shape == (2, 3, frontend.n_frames(N_SAMPLES), 32)  # 2 layers + the input of the first
    reference = ssl.build_model(
        json.loads((checkpoints[family] / "config.json").read_text()), checkpoint=checkpoints[family]
    )
    for name, tensor in reference.state_dict().items():  # the saved weights, not a fresh init
        assert torch.equal(frontend.model.state_dict()[name], tensor), name


@pytest.mark.parametrize("stable", [False, True])
@pytest.mark.parametrize("layer", [0, 1, 2])
def test_a_fixed_layer_drops_the_layers_after_it_and_equals_the_whole_model(tmp_path: Path, layer: int, stable: bool):
    folder = ssl.save_random(tmp_path / "m", "wav2vec2", size={**ssl.TINY, "do_stable_layer_norm": stable})
    whole = ssl.load_frontend(str(folder), layer=None, normalize=False).eval()
    one = ssl.load_frontend(str(folder), layer=layer, normalize=False).eval()
    assert len(one.model.encoder.layers) == layer
    x = torch.randn(2, N_SAMPLES)
    with torch.no_grad():
        torch.testing.assert_close(one(x)[:, 0], whole(x)[:, layer], rtol=1e-5, atol=1e-5)


def test_a_hub_id_resolves_from_the_local_cache_only(checkpoints, tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "hub"
    snapshot = cache / "models--org--tiny" / "snapshots" / "0123abcd"
    shutil.copytree(checkpoints["hubert"], snapshot)
    (cache / "models--org--tiny" / "refs").mkdir()
    (cache / "models--org--tiny" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    assert ssl.resolve_checkpoint("org/tiny") == snapshot
    with pytest.raises(ssl.CheckpointError, match=r"org/absent.*not available on this machine.*hf download org/absent"):
        ssl.resolve_checkpoint("org/absent")


def test_bad_checkpoints_fail_at_once_with_the_reason(checkpoints, tmp_path: Path) -> None:
    with pytest.raises(ssl.CheckpointError, match=r"models/ssl/nope.*not available"):
        ssl.resolve_checkpoint("models/ssl/nope")
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ssl.CheckpointError, match=r"'bert' is not a supported family"):
        ssl.resolve_checkpoint(str(other))
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy2(checkpoints["wavlm"] / "config.json", bare)
    with pytest.raises(ssl.CheckpointError, match=r"holds no weights"):
        ssl.resolve_checkpoint(str(bare))


def test_pickled_weights_load_weights_only(checkpoints, tmp_path: Path) -> None:
    """A pytorch_model.bin checkpoint loads through torch.load(weights_only=True): a pickle that
    builds any other object is refused."""
    folder = tmp_path / "bin"
    model = ssl.build_model(
        json.loads((checkpoints["wav2vec2"] / "config.json").read_text()), checkpoint=checkpoints["wav2vec2"]
    )
    folder.mkdir()
    shutil.copy2(checkpoints["wav2vec2"] / "config.json", folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # the layout of older hub checkpoints
    loaded = ssl.load_frontend(str(folder), layer=None, normalize=False)
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in model.state_dict().items())

    class Boom:
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({"x": Boom()}, folder / "pytorch_model.bin")
    with pytest.raises(Exception, match=r"(?i)weights.only|unpickl|Unsupported"):
        ssl.load_frontend(str(folder), layer=None, normalize=False)


def test_params_refuse_what_a_kind_cannot_read(checkpoints) -> None:
    base = {"train": {"models": {"ssl_aasist": "ssl_aasist"}}}
    with pytest.raises(ParamError, match=r"ssl\.checkpoint.*ssl_aasist needs"):
        check_model_params(params_from_dict(base))
    pooled = {**base, "ssl": {"checkpoint": str(checkpoints["wavlm"]), "cache": "pooled"}}
    with pytest.raises(ParamError, match=r"ssl\.cache.*frames"):
        check_model_params(params_from_dict(pooled))
    fine = {**base, "ssl": {"checkpoint": str(checkpoints["wavlm"]), "freeze": False}}
    kind = check_model_params(params_from_dict(fine))["ssl_aasist"]
    section = kind.section(params_from_dict(fine))
    assert kind.input_for(section) == "waveform" and section.frontend.freeze is False
    with pytest.raises(ParamError, match=r"ssl_linear\.frontend"):
        check_model_params(
            params_from_dict({"train": {"models": {"ssl_linear": "ssl_linear"}}, "ssl_linear": {"frontend": {}}})
        )
    with pytest.raises(ParamError, match=r"ssl\.layer"):
        params_from_dict({"ssl": {"layer": -1}})


# ---------------------------------------------------------------- the embedding store


def _store(checkpoint: Path, waveforms: Path, out: Path, **ssl_params) -> tuple[SSLParams, dict]:
    params = SSLParams(checkpoint=str(checkpoint), n_samples=N_SAMPLES, batch_size=5, **ssl_params)
    frontend = ssl.load_frontend(params.checkpoint, layer=params.layer, normalize=params.normalize)
    summary = write_store(waveforms, out, params, frontend, fingerprint=ssl.fingerprint(params.checkpoint))
    return params, summary


def test_the_store_holds_what_the_front_end_gives_in_float16(checkpoints, corpus, tmp_path: Path) -> None:
    manifest, waveforms = corpus
    params, summary = _store(checkpoints["wav2vec2"], waveforms, tmp_path / "frames", cache="frames")
    store = EmbeddingStore(tmp_path / "frames")
    assert summary["shape"] == [len(manifest), 3, 24, 32] and store.shape == tuple(summary["shape"])
    assert summary["bytes_per_clip"] == 3 * 24 * 32 * 2
    assert (tmp_path / "frames" / "embeddings.f16").stat().st_size == len(manifest) * summary["bytes_per_clip"]
    from deepfake_audio.waveforms import WaveformSet, WaveformStore

    clips = WaveformSet(WaveformStore(waveforms), np.arange(3), n_samples=N_SAMPLES)[0:3]
    frontend = ssl.load_frontend(params.checkpoint, layer=None, normalize=None)
    with torch.no_grad():
        expected = frontend(torch.from_numpy(clips)).numpy()
    for i in range(3):
        np.testing.assert_allclose(store.read(i), expected[i], rtol=2e-3, atol=2e-3)  # float16 rounding
    _, pooled = _store(checkpoints["wav2vec2"], waveforms, tmp_path / "pooled", cache="pooled", layer=1)
    assert pooled["shape"] == [len(manifest), 1, 2, 32]
    again = tmp_path / "again"
    _store(checkpoints["wav2vec2"], waveforms, again, cache="pooled", layer=1)
    assert (again / "embeddings.f16").read_bytes() == (tmp_path / "pooled" / "embeddings.f16").read_bytes()


# ---------------------------------------------------------------- back-ends: train, bundle, predict


def _fit(name: str, corpus, out: Path, *, embeddings: Path | None, frontend: SSLParams, **section) -> dict:
    manifest, waveforms = corpus
    kind = get_model_kind(name)
    raw = {"train": {"models": {name: name}}, "ssl": as_dict(frontend), name: section}
    params = params_from_dict(raw)
    sec = check_model_params(params) and kind.section(params)
    train = TrainParams(models={name: name}, epochs=2, batch_size=8, device="cpu", lr=3e-3)
    source = InputSource(waveforms=waveforms, n_samples=kind.crop_samples(sec, AUDIO), embeddings=embeddings)
    data = load_inputs(manifest, input=kind.input_for(sec), source=source, splits=["train", "dev", "test"])
    base = {"audio": as_dict(AUDIO), "features": as_dict(FeatureParams()), "scaler": {}}
    out.mkdir(parents=True, exist_ok=True)
    summary = kind.fit(data, FitContext(section=sec, train=train, out_dir=out, key="k", config=base))
    summary.pop("train_samples_per_s")
    summary.pop("data_wait_share")
    config = bundle_config(
        kind,
        summary,
        section=sec,
        train_params=train,
        audio=AUDIO,
        features=FeatureParams(),
        scaler={},
        n_samples=source.n_samples,
    )
    save_config(out, config)
    return data


@pytest.mark.parametrize(
    ("name", "family", "cache", "layer"),
    [
        ("ssl_linear", "wav2vec2", "pooled", None),
        ("ssl_attm", "wavlm", "pooled", None),
        ("ssl_aasist", "hubert", "frames", 2),
        ("ssl_linear", "hubert", "frames", None),
    ],
)
def test_frozen_back_ends_train_on_the_store_and_predict_runs_the_front_end(
    checkpoints, corpus, tmp_path: Path, name: str, family: str, cache: str, layer: int | None
) -> None:
    manifest, waveforms = corpus
    frontend, _ = _store(checkpoints[family], waveforms, tmp_path / "emb", cache=cache, layer=layer)
    data = _fit(name, corpus, tmp_path / "b", embeddings=tmp_path / "emb", frontend=frontend)
    bundle = load_bundle(tmp_path / "b")
    assert bundle.input == "embeddings" and bundle.config["n_samples"] == N_SAMPLES
    state = torch.load(tmp_path / "b" / "weights.pt", weights_only=True)
    assert all(k.startswith("backend.") for k in state)  # the frozen front-end is not copied into the bundle
    test = data["test"]
    scores = bundle.score(test.x)
    assert scores.shape == (len(test.ids),) and np.isfinite(scores).all()
    # predict reads the files and runs the front-end: the store's scores, within float16 rounding
    predictor = Predictor.load(tmp_path / "b")
    paths = [waveforms.parent / p for p in manifest.set_index("utt_id").loc[test.ids, "path"]]
    rows = predictor.predict_files(paths, scope="first", vad=False)
    np.testing.assert_allclose([r["score"] for r in rows], scores, atol=2e-2 * max(1.0, np.abs(scores).max()))


def test_a_frozen_bundle_refuses_other_weights_under_the_checkpoint_name(checkpoints, corpus, tmp_path: Path) -> None:
    manifest, waveforms = corpus
    folder = tmp_path / "ckpt"
    shutil.copytree(checkpoints["wav2vec2"], folder)
    frontend, _ = _store(folder, waveforms, tmp_path / "emb")
    _fit("ssl_linear", corpus, tmp_path / "b", embeddings=tmp_path / "emb", frontend=frontend)
    ssl.save_random(folder, "wav2vec2", seed=7)  # other weights, same path
    predictor = Predictor.load(tmp_path / "b")
    with pytest.raises(ssl.CheckpointError, match=r"not the checkpoint this bundle's back-end was trained on"):
        predictor.score_signals([np.zeros(N_SAMPLES, dtype=np.float32)])


def test_fine_tuning_trains_the_front_end_at_its_own_rate_and_the_bundle_stands_alone(
    checkpoints, corpus, tmp_path: Path
) -> None:
    manifest, waveforms = corpus
    folder = tmp_path / "ckpt"
    shutil.copytree(checkpoints["wavlm"], folder)
    frontend = SSLParams(checkpoint=str(folder), freeze=False, n_samples=N_SAMPLES, lr=1e-3, layer=1)
    data = _fit("ssl_aasist", corpus, tmp_path / "b", embeddings=None, frontend=frontend)
    bundle = load_bundle(tmp_path / "b")
    assert bundle.input == "waveform"
    state = torch.load(tmp_path / "b" / "weights.pt", weights_only=True)
    pretrained = ssl.build_model(json.loads((folder / "config.json").read_text()), checkpoint=folder).state_dict()
    tuned = {k.removeprefix("frontend.model."): v for k, v in state.items() if k.startswith("frontend.model.")}
    assert tuned and any(not torch.equal(tuned[k], pretrained[k]) for k in tuned)  # the front-end moved
    scores = bundle.score(data["test"].x)
    shutil.rmtree(folder)  # the bundle holds the front-end's config and weights: the checkpoint is not needed
    predictor = Predictor.load(tmp_path / "b")
    rows = predictor.predict_files(
        [waveforms.parent / p for p in manifest.set_index("utt_id").loc[data["test"].ids, "path"]],
        scope="first",
        vad=False,
    )
    np.testing.assert_allclose([r["score"] for r in rows], scores, atol=1e-4)


@pytest.mark.parametrize("name", ["ssl_linear", "ssl_attm", "ssl_aasist"])
@pytest.mark.parametrize("n_layers", [1, 3])
def test_every_weight_of_a_back_end_learns(name: str, n_layers: int) -> None:
    """DDP needs a gradient for every weight (a fixed layer included), or to be told which never get one."""
    from deepfake_audio.models.ssl import BACKENDS, SECTIONS

    pooled = name != "ssl_aasist"
    net = BACKENDS[name](
        n_layers, 32, pooled, SECTIONS[name](proj_dim=12) if name == "ssl_aasist" else SECTIONS[name]()
    )
    out = net(torch.randn(4, n_layers, 2 if pooled else 30, 32))
    (out.sum() if out.ndim == 1 else out[:, 1].sum()).backward()
    unused = [n for n, p in net.named_parameters() if p.grad is None]
    # AASIST's residual blocks keep the published bn1 that never reaches the output; they tell DDP so.
    assert all(".bn1." in n for n in unused)
    assert not unused or any(getattr(m, "find_unused_parameters", False) for m in net.modules())


def test_a_frozen_back_end_refuses_a_store_of_other_settings(checkpoints, corpus, tmp_path: Path) -> None:
    manifest, waveforms = corpus
    _store(checkpoints["wav2vec2"], waveforms, tmp_path / "emb", layer=1)
    other = SSLParams(checkpoint=str(checkpoints["wav2vec2"]), n_samples=N_SAMPLES, batch_size=5)  # every layer
    with pytest.raises(ValueError, match=r"other front-end settings \(layer\)"):
        _fit("ssl_linear", corpus, tmp_path / "b", embeddings=tmp_path / "emb", frontend=other)


def test_setup_checks_refuse_a_layer_the_checkpoint_lacks_and_too_short_crops(checkpoints) -> None:
    def section(name: str, **fe):
        raw = {"train": {"models": {name: name}}, "ssl": {"checkpoint": str(checkpoints["hubert"]), **fe}, name: {}}
        params = params_from_dict(raw)
        return get_model_kind(name), get_model_kind(name).section(params)

    kind, sec = section("ssl_linear", layer=3)
    with pytest.raises(ParamError, match=r"ssl\.layer=3.*0\.\.2"):
        kind.check_setup(sec)
    kind, sec = section("ssl_linear", n_samples=300)
    with pytest.raises(ParamError, match=r"ssl\.n_samples=300.*at least 400"):
        kind.check_setup(sec)
    kind, sec = section("ssl_aasist", n_samples=3000, cache="frames")  # 9 frames; its pools need 9
    kind.check_setup(sec)
    kind, sec = section("ssl_aasist", n_samples=2000, cache="frames")
    with pytest.raises(ParamError, match=r"ssl\.n_samples=2000.*9 are needed"):
        kind.check_setup(sec)
    kind, sec = section("ssl_linear", checkpoint="models/ssl/absent")
    with pytest.raises(ssl.CheckpointError, match=r"models/ssl/absent.*not available"):
        kind.check_setup(sec)


def test_the_same_seed_trains_the_same_back_end_whatever_the_process_drew_before(checkpoints, corpus, tmp_path: Path):
    manifest, waveforms = corpus
    frontend, _ = _store(checkpoints["wav2vec2"], waveforms, tmp_path / "emb")
    states = []
    for run, draws in (("a", 1), ("b", 5)):
        torch.rand(draws)  # another stage, or an import, drew from the global generator first
        _fit("ssl_attm", corpus, tmp_path / run, embeddings=tmp_path / "emb", frontend=frontend)
        states.append(torch.load(tmp_path / run / "weights.pt", weights_only=True))
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
