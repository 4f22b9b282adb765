"""``deepfake-audio export``: ONNX and TorchScript exports score the pipeline's test split as their
bundles do, ``Predictor`` scores files with them, the ONNX runtime works with torch unimportable,
and the refusals say what to do.

Frame bundles are tiny real models trained by the pipeline's stages (tests/bundles.py). Waveform
bundles are built beside them with seeded random weights (training AASIST or RawNet2 takes far
longer than exporting it), with the tiny pipeline's audio, features and scaler.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from deepfake_audio.bundle import SCHEMA_VERSION, load_bundle  # noqa: E402
from deepfake_audio.export import (  # noqa: E402
    BUNDLE_SCHEMA_VERSION,
    EXPORTABLE,
    FORMATS,
    NOT_EXPORTABLE,
    PARITY_TOLERANCE,
    ExportedBundle,
    ParityError,
    add_parser,
    export_bundle,
    exported_format,
    load_exported,
)
from deepfake_audio.inputs import InputSource, load_inputs  # noqa: E402
from deepfake_audio.models import get_model_kind, known_models  # noqa: E402
from deepfake_audio.models.waveform import AasistParams, RawNet2Params  # noqa: E402
from deepfake_audio.params import AudioParams, as_dict, from_dict  # noqa: E402
from deepfake_audio.predict import Predictor  # noqa: E402
from tests.bundles import make_bundles  # noqa: E402
from tests.conftest import synth, write_signal  # noqa: E402

FRAME_KINDS = ("cnn", "cnn_lstm", "cnn_bilstm_attention", "lstm", "cnn2d")
WAVE_SECTIONS = {
    "aasist": AasistParams(
        n_samples=8000, sinc_filters=20, sinc_kernel=32, channels=((1, 8), (8, 8), (8, 8), (8, 8)), gat_dims=(8, 8)
    ),
    "rawnet2": RawNet2Params(
        n_samples=4000, sinc_filters=8, sinc_kernel=31, channels=(8, 8, 16, 16), gru_units=16, fc_units=16
    ),
    "lcnn_wave": None,  # the tiny pipeline's `model` section; it crops audio.duration_s
}
WAVE_LOSSES = {"rawnet2": "oc_softmax"}  # a cosine head on the embedding: one score, no logit pair

# lcnn_wave (its torch STFT front-end and LCNN's Max-Feature-Map are why ONNX uses the dynamo
# exporter) is exported to ONNX only, to keep this file's time down.
CASES = [(k, f) for k in (*FRAME_KINDS, "aasist", "rawnet2") for f in FORMATS] + [("lcnn_wave", "onnx")]

NO_TORCH = """
import importlib.abc, json, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, NoTorch())
from deepfake_audio.predict import Predictor

predictor = Predictor.load(sys.argv[1], runtime="onnx")
row = predictor.predict_files([sys.argv[2]], vad=False)[0]
heavy = ("torch", "deepfake_audio.models", "deepfake_audio.bundle", "deepfake_audio.training")
print(json.dumps({"score": row["score"], "error": row["error"], "imported": [m for m in heavy if m in sys.modules]}))
"""
"""Scores a file with an ONNX export where ``import torch`` fails. (``sys.modules["torch"] = None``
would do that too, but scipy's array-API helpers then read ``sys.modules["torch"].Tensor`` and
crash on import.)"""


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    # A folder of its own: the shared session folder holds exactly the default kinds, which
    # tests/test_app.py lists.
    trained = make_bundles(tmp_path_factory.mktemp("export_pipeline"), ("cnn_lstm", "xgboost", *FRAME_KINDS))
    out = tmp_path_factory.mktemp("wave_bundles")
    for i, (name, section) in enumerate(WAVE_SECTIONS.items()):
        trained[name] = _random_bundle(trained["cnn_lstm"], out / name, name, section, seed=i)
    return trained


def _random_bundle(template: Path, out: Path, name: str, section: object, *, seed: int) -> Path:
    """A bundle of kind ``name`` with seeded random weights (batch-norm statistics included, so
    no layer is the identity) and ``template``'s audio, features, scaler, threshold and calibration."""
    kind = get_model_kind(name)
    config = json.loads((template / "config.json").read_text(encoding="utf-8"))
    section = section if section is not None else kind.section_from_config(config)
    crop = kind.crop_samples(section, from_dict(AudioParams, config["audio"], prefix="audio"))
    config.update(
        model=name,
        input=kind.input_for(section),
        params_section=kind.params_section,
        hyper_parameters=as_dict(section),
        n_samples=crop,
        train={**config["train"], "loss": WAVE_LOSSES.get(name, "cross_entropy")},
        summary={**config["summary"], "n_features": 1, "n_frames": crop},
    )
    from deepfake_audio.models.waveform import with_loss_head

    torch.manual_seed(seed)
    net = with_loss_head(kind.build(1, crop, section, config), config["train"])
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    out.mkdir(parents=True)
    torch.save(net.state_dict(), out / "weights.pt")
    (out / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory, bundles: dict[str, Path]):
    """``export(kind, fmt)`` -> the export folder, made once per module. Exports go to their own
    folder: the tiny bundles' data/models is shared with other modules that list what it holds."""
    root = tmp_path_factory.mktemp("exports")
    made: dict[tuple[str, str], Path] = {}

    def make(kind: str, fmt: str) -> Path:
        if (kind, fmt) not in made:
            made[kind, fmt] = export_bundle(bundles[kind], fmt, root / f"{kind}-{fmt}")
        return made[kind, fmt]

    return make


def _root(bundles: dict[str, Path]) -> Path:
    return bundles["cnn_lstm"].parents[2]  # <root>/data/models/cnn_lstm


def _test_clips(bundles: dict[str, Path]) -> list[Path]:
    """The test split's audio files (utt_id is "<source>/<path under corpus/, less its suffix>")."""
    root = _root(bundles)
    manifest = pd.read_parquet(root / "data" / "split" / "manifest.parquet")
    ids = manifest.loc[manifest["split"] == "test", "utt_id"]
    return [root / "corpus" / f"{u.split('/', 1)[1]}.wav" for u in ids]


def _test_inputs(bundles: dict[str, Path], kind: str) -> np.ndarray:
    """The model input of every test-split clip: frames from the standardize stage's table, or the
    audio crop Predictor makes from the clip's file."""
    bundle = load_bundle(bundles[kind])
    if bundle.input == "frames":
        root = _root(bundles)
        data = load_inputs(
            pd.read_parquet(root / "data" / "features" / "manifest.parquet"),
            input="frames",
            source=InputSource(scaled=root / "data" / "scaled"),
            splits=["test"],
            groups=bundle.frame_groups,
        )
        return data["test"].x
    predictor = Predictor.load(bundles[kind], runtime="torch")
    return np.stack([predictor.features(predictor.decode(p)) for p in _test_clips(bundles)])


# ---------------------------------------------------------------- parity


@pytest.mark.parametrize(("kind", "fmt"), CASES)
def test_export_scores_the_test_split_as_its_bundle(bundles: dict[str, Path], export, kind: str, fmt: str) -> None:
    out = export(kind, fmt)
    bundle = load_bundle(bundles[kind])
    exported = load_exported(out, fmt)
    assert isinstance(exported, ExportedBundle) and exported_format(out) == fmt
    assert (exported.input, exported.frame_groups) == (bundle.input, bundle.frame_groups)
    record = exported.config["exported"]
    assert record["source"] == bundles[kind].as_posix() and record["torch_version"] == torch.__version__
    assert record["parity"]["n_inputs"] >= 1 and record["parity"]["max_abs_diff"] <= PARITY_TOLERANCE
    assert ("opset" in record) == (fmt == "onnx")

    x = _test_inputs(bundles, kind)
    assert len(x) >= 4
    expected, got = bundle.score(x), exported.score(x, batch_size=3)
    assert got.dtype == np.float64 and got.shape == expected.shape == (len(x),)
    assert np.max(np.abs(got - expected)) <= PARITY_TOLERANCE


# ---------------------------------------------------------------- Predictor


def _clips(bundles: dict[str, Path], tmp_path: Path) -> list[Path]:
    # The test split's 1-s clips and a 2.5-s one that is scored in three windows.
    long = synth("harmonic", n_samples=40000, sample_rate=16000, seed=3)
    return [*_test_clips(bundles), write_signal(tmp_path / "long.wav", long, 16000)]


@pytest.mark.parametrize(("kind", "fmt"), [("cnn_lstm", "onnx"), ("aasist", "onnx"), ("cnn2d", "torchscript")])
def test_predictor_scores_files_with_an_export_as_with_its_bundle(
    bundles: dict[str, Path], export, tmp_path: Path, kind: str, fmt: str
) -> None:
    out = export(kind, fmt)
    paths = _clips(bundles, tmp_path)
    # The voice-activity check is the same either way; off, every window is scored.
    expected = Predictor.load(bundles[kind]).predict_files(paths, batch_size=4, vad=False)
    for runtime in (fmt, "auto"):
        predictor = Predictor.load(out, runtime=runtime)
        assert isinstance(predictor.bundle, ExportedBundle) and predictor.bundle.format == fmt
        rows = predictor.predict_files(paths, batch_size=4, vad=False)
        assert [r["error"] for r in rows] == [None] * len(paths)
        assert [r["n_windows"] for r in rows] == [r["n_windows"] for r in expected]
        np.testing.assert_allclose(
            [r["score"] for r in rows], [r["score"] for r in expected], rtol=0, atol=PARITY_TOLERANCE
        )


def test_the_onnx_runtime_scores_without_torch(bundles: dict[str, Path], export) -> None:
    out = export("cnn_lstm", "onnx")
    clip = _test_clips(bundles)[0]
    run = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(out), str(clip)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["error"] is None and result["imported"] == []
    expected = Predictor.load(bundles["cnn_lstm"]).predict_files([clip], vad=False)[0]["score"]
    assert result["score"] == pytest.approx(expected, abs=PARITY_TOLERANCE)


# ---------------------------------------------------------------- the folder and refusals


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="deepfake-audio")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_export_writes_a_sibling_bundle_and_replaces_only_an_export(
    bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "models" / "cnn2d"
    shutil.copytree(bundles["cnn2d"], source)
    (source / "MODEL_CARD.md").write_text("# cnn2d\n", encoding="utf-8")
    assert _cli("export", "--format", "torchscript", str(source)) == 0
    out = tmp_path / "models" / "cnn2d-torchscript"
    assert str(out) in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "config.json", "model.ts"]
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    source_config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in config.items() if k != "exported"} == source_config
    assert config["exported"]["file"] == "model.ts"
    assert sorted(p.name for p in out.parent.iterdir()) == ["cnn2d", "cnn2d-torchscript"]  # no temp folder left

    assert export_bundle(source, "torchscript") == out  # an earlier export is replaced
    other = tmp_path / "models" / "notes"
    other.mkdir()
    with pytest.raises(ValueError, match="exists and is not an export"):
        export_bundle(source, "torchscript", other)
    with pytest.raises(ValueError, match="is an export"):
        export_bundle(out, "onnx", tmp_path / "again")


def test_an_export_that_scores_differently_is_refused_and_nothing_is_left(
    bundles: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    score = ExportedBundle.score
    monkeypatch.setattr(ExportedBundle, "score", lambda self, x, **kw: score(self, x, **kw) + 1e-3)
    with pytest.raises(ParityError, match="scores differently"):
        export_bundle(bundles["cnn2d"], "torchscript", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_kinds_that_do_not_export_are_refused_with_why(
    bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert set(EXPORTABLE) | set(NOT_EXPORTABLE) == set(known_models())  # every kind is decided
    assert not set(EXPORTABLE) & set(NOT_EXPORTABLE)
    with pytest.raises(ValueError, match="xgboost bundles do not export: gradient-boosted trees"):
        export_bundle(bundles["xgboost"], "onnx", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert _cli("export", "--format", "onnx", str(bundles["xgboost"]), "--out", str(tmp_path / "x")) == 2
    assert capsys.readouterr().err.startswith("deepfake-audio export: error: ")
    assert _cli("export", "--format", "onnx", str(tmp_path / "nothing")) == 2
    assert "is not a model bundle" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --format is required and one of FORMATS
        _cli("export", "--format", "tflite", str(bundles["cnn2d"]))


def test_loading_a_missing_or_changed_export_says_what_to_run(bundles: dict[str, Path], export, tmp_path: Path) -> None:
    source = bundles["cnn2d"]
    command = f"has no ONNX export: run `deepfake-audio export --format onnx {source}`"
    with pytest.raises(ValueError, match=re.escape(command)):
        Predictor.load(source, runtime="onnx")
    ts = export("cnn2d", "torchscript")
    with pytest.raises(ValueError, match=re.escape(f"it is the TorchScript export of {source}")):
        Predictor.load(ts, runtime="onnx")

    copy = tmp_path / "cnn2d-onnx"
    shutil.copytree(export("cnn2d", "onnx"), copy)
    with (copy / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ValueError, match="is not the file exported: its sha256 is"):
        Predictor.load(copy)
    (copy / "model.onnx").unlink()
    with pytest.raises(ValueError, match="model.onnx is missing"):
        load_exported(copy, "onnx")


def test_the_schema_version_read_without_torch_is_the_bundles() -> None:
    assert BUNDLE_SCHEMA_VERSION == SCHEMA_VERSION
