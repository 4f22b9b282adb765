"""``deepfake-audio predict`` and ``stream``, and the :mod:`deepfake_audio.predict` API behind them.

Bundles are tiny real models trained once per session by the pipeline's own stages
(tests/bundles.py); clips are generated.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepfake_audio.cli import format_table, main
from deepfake_audio.errors import NonFiniteAudio, SilentAudio
from deepfake_audio.predict import Predictor, WindowStream, best_bundle, list_bundles, pcm_chunks, window_spans
from tests.bundles import session_bundles
from tests.conftest import synth, write_bad_files, write_signal

MODELS = ("cnn_lstm", "xgboost")


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return session_bundles(tmp_path_factory)


@pytest.fixture(scope="session")
def predictors(bundles: dict[str, Path]) -> dict[str, Predictor]:
    return {name: Predictor.load(path) for name, path in bundles.items()}


def _voice(duration_s: float, *, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    return synth("harmonic", n_samples=int(round(duration_s * sample_rate)), sample_rate=sample_rate, seed=seed)


def _cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def _csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


# ---------------------------------------------------------------- scores


@pytest.mark.parametrize("model", MODELS)
def test_file_scores_are_finite_calibrated_and_thresholded(
    predictors: dict[str, Predictor], tmp_path: Path, model: str
) -> None:
    predictor = predictors[model]
    paths = [
        write_signal(tmp_path / "voice.wav", _voice(0.5), 16000),
        write_signal(tmp_path / "noise.flac", synth("noise", n_samples=27200, sample_rate=16000), 16000),
        write_signal(tmp_path / "long.wav", _voice(2.5, seed=1), 16000),
    ]
    rows = predictor.predict_files(paths, vad=False)  # generated signals: no speech to a VAD
    assert [r["path"] for r in rows] == [str(p) for p in paths]
    assert [r["duration_s"] for r in rows] == pytest.approx([0.5, 1.7, 2.5])
    calibration = predictor.calibration
    assert calibration is not None
    for r in rows:
        assert r["error"] is None and np.isfinite(r["score"])
        assert r["llr"] == pytest.approx(calibration.slope * r["score"] + calibration.offset, rel=1e-12, abs=1e-9)
        assert r["prob_bonafide"] == pytest.approx(1 / (1 + np.exp(-r["llr"])), abs=1e-12)
        assert r["decision"] == ("bonafide" if r["score"] >= predictor.threshold else "spoof")
    assert rows[0]["score"] != rows[1]["score"]  # voice and noise differ even to a 20-tree model


@pytest.mark.parametrize("model", MODELS)
def test_scores_equal_the_training_pipeline_on_the_same_clip(
    bundles: dict[str, Path], model: str, tmp_path: Path
) -> None:
    """The bundle's features, scaler and rows rebuilt by hand from config.json give bit-identical scores."""
    from deepfake_audio.bundle import load_bundle
    from deepfake_audio.features import FeatureExtractor
    from deepfake_audio.params import AudioParams, FeatureParams, from_dict
    from deepfake_audio.scaling import Scaler

    predictor = Predictor.load(bundles[model])
    bundle = load_bundle(bundles[model])
    cfg = bundle.config
    extractor = FeatureExtractor(
        from_dict(AudioParams, cfg["audio"], prefix="audio"),
        from_dict(FeatureParams, cfg["features"], prefix="features"),
    )
    path = write_signal(tmp_path / "clip.wav", _voice(1.6, sample_rate=22050, seed=4), 22050)
    y = extractor.load(str(path))
    frames, utterance = extractor.extract(y)
    if bundle.kind.input == "frames":
        rows = [i for i, g in enumerate(extractor.layout.frame_groups) if g in bundle.frame_groups]
        x = Scaler.from_json(cfg["scaler"]["frames"]).transform_frames(frames[None])[:, rows]
    else:
        x = Scaler.from_json(cfg["scaler"]["utterances"]).transform_table(utterance[None])
    expected = bundle.score(x)
    np.testing.assert_array_equal(predictor.score_signals([y]), expected)
    np.testing.assert_array_equal(predictor.decode(path)[: len(y)], y)  # load = decode + crop (1.6 s > 1 s)
    assert predictor.predict_files([path], scope="first", vad=False)[0]["score"] == expected[0]


@pytest.mark.parametrize("model", MODELS)
def test_predict_gives_the_evaluate_stage_scores(bundles: dict[str, Path], model: str) -> None:
    """Predicting the pipeline's own test and dev clips from their files gives the scores that
    the evaluate stage computes from the standardised feature tables."""
    import pandas as pd

    from deepfake_audio.bundle import load_bundle
    from deepfake_audio.evaluation import score_splits
    from deepfake_audio.inputs import InputSource, load_inputs

    root = bundles[model].parents[2]
    bundle = load_bundle(bundles[model])
    manifest = pd.read_parquet(root / "data" / "features" / "manifest.parquet")
    data = load_inputs(
        manifest,
        input=bundle.kind.input,
        source=InputSource(scaled=root / "data" / "scaled"),
        splits=["test", "dev"],
        groups=bundle.frame_groups,
    )
    expected = score_splits(bundle, data)
    # utt_id is "<source>/<path relative to labels.csv, less its suffix>"
    files = {p.relative_to(root / "corpus").with_suffix("").as_posix(): p for p in (root / "corpus").rglob("*.wav")}
    paths = [files[u.split("/", 1)[1]] for u in expected["utt_id"]]
    rows = Predictor.load(bundles[model]).predict_files(paths, scope="first", vad=False, batch_size=5)
    assert len(rows) == len(expected) >= 10
    assert [r["score"] for r in rows] == pytest.approx(expected["score"].tolist(), abs=1e-5)
    assert [r["llr"] for r in rows] == pytest.approx(expected["llr"].tolist(), abs=1e-4)


def test_stereo_and_other_sample_rates_are_decoded_as_in_training(
    predictors: dict[str, Predictor], tmp_path: Path
) -> None:
    predictor = predictors["cnn_lstm"]
    mono8k = _voice(1.2, sample_rate=8000, seed=2)
    paths = {
        "8k": write_signal(tmp_path / "a8k.wav", mono8k, 8000),
        "44k": write_signal(tmp_path / "a44k.flac", _voice(0.9, sample_rate=44100, seed=3), 44100),
        "stereo": write_signal(tmp_path / "stereo.wav", np.stack([mono8k, 0.5 * mono8k], axis=1), 8000),
    }
    rows = dict(zip(paths, predictor.predict_files(list(paths.values()), vad=False)))
    assert all(r["error"] is None and np.isfinite(r["score"]) for r in rows.values())
    assert [rows[k]["duration_s"] for k in paths] == pytest.approx([1.2, 0.9, 1.2], abs=1e-3)
    # The same samples through score_signal (soxr from 8 kHz) score the same; the stereo file is
    # scored on its channel mean, a different (quieter) signal.
    y, sr = sf.read(paths["8k"], dtype="float32")
    assert predictor.score_signal(y, sr, vad=False)["score"] == pytest.approx(rows["8k"]["score"], abs=1e-6)
    stereo, _ = sf.read(paths["stereo"], dtype="float32")
    stereo_score = predictor.score_signal(stereo.mean(axis=1), sr, vad=False)["score"]
    assert stereo_score == pytest.approx(rows["stereo"]["score"], abs=1e-6)


def test_score_signal_rejects_what_the_pipeline_rejects(predictors: dict[str, Predictor]) -> None:
    predictor = predictors["xgboost"]
    y = _voice(1.0)
    y_nan = y.copy()
    y_nan[10] = np.nan
    with pytest.raises(NonFiniteAudio):
        predictor.score_signal(y_nan, 16000)
    with pytest.raises(SilentAudio):
        predictor.score_signal(np.zeros(16000, np.float32), 16000)
    with pytest.raises(ValueError, match="mono"):
        predictor.score_signal(np.stack([y, y], axis=1), 16000)
    with pytest.raises(ValueError, match="scope='first' scores one crop"):
        predictor.score_signal(y, 16000, scope="first", hop_s=0.5)
    with pytest.raises(ValueError, match="aggregate='max'"):
        predictor.score_signal(y, 16000, aggregate="max")
    with pytest.raises(ValueError, match="window_s=0"):
        predictor.score_signal(y, 16000, window_s=0)


# ---------------------------------------------------------------- windows


def test_window_spans_cover_the_signal() -> None:
    assert window_spans(10, window=2, hop=1) == [(s, s + 2) for s in range(9)]
    assert window_spans(10, window=3, hop=2) == [(0, 3), (2, 5), (4, 7), (6, 9), (7, 10)]
    assert window_spans(2, window=5, hop=1) == [(0, 2)]
    assert window_spans(10, window=2, hop=4) == [(0, 2), (4, 6), (8, 10)]
    with pytest.raises(ValueError):
        window_spans(10, window=2, hop=0)


@pytest.mark.parametrize("model", MODELS)
def test_a_10_s_file_in_2_s_windows_every_1_s(predictors: dict[str, Predictor], tmp_path: Path, model: str) -> None:
    predictor = predictors[model]
    # voice, then noise from 4 s to 6 s: windows over the noise score differently
    y = _voice(10.0, seed=7)
    y[64000:96000] = synth("noise", n_samples=32000, sample_rate=16000, seed=1)
    result = predictor.score_signal(y, 16000, window_s=2.0, hop_s=1.0, vad=False)
    windows = result["windows"]
    assert [(w.start_s, w.end_s) for w in windows] == [(float(s), float(s + 2)) for s in range(9)]
    expected = predictor.score_signals([y[s * 16000 : (s + 2) * 16000] for s in range(9)])
    assert [w.score for w in windows] == pytest.approx(expected.tolist(), abs=1e-6)
    scores = np.array([w.score for w in windows])
    assert result["score"] == pytest.approx(scores.mean(), abs=1e-12)
    assert result["llr"] == pytest.approx(predictor.calibration.llr([scores.mean()])[0], abs=1e-9)
    assert result["decision"] == ("bonafide" if scores.mean() >= predictor.threshold else "spoof")
    assert result["min_window"] == windows[int(np.argmin(scores))]
    assert result["duration_s"] == 10.0
    for w in windows:
        assert w.llr == pytest.approx(predictor.calibration.llr([w.score])[0])
        assert w.decision == ("bonafide" if w.score >= predictor.threshold else "spoof")
    # The file path gives the same windows (batched differently: scores within float32 rounding).
    path = write_signal(tmp_path / "ten.wav", y, 16000, subtype="FLOAT")
    row = predictor.predict_files([path], window_s=2.0, hop_s=1.0, vad=False, batch_size=4)[0]
    assert [(w["start_s"], w["end_s"]) for w in row["windows"]] == [(w.start_s, w.end_s) for w in windows]
    assert [w["score"] for w in row["windows"]] == pytest.approx(scores.tolist(), abs=1e-6)
    assert row["min_window"]["start_s"] == result["min_window"].start_s
    assert row["score"] == pytest.approx(result["score"], abs=1e-6)


def test_a_file_shorter_than_one_window_is_one_window(predictors: dict[str, Predictor]) -> None:
    predictor = predictors["cnn_lstm"]
    y = _voice(0.5)
    result = predictor.score_signal(y, 16000, window_s=2.0, vad=False)
    assert [(w.start_s, w.end_s) for w in result["windows"]] == [(0.0, 0.5)]
    assert result["score"] == predictor.score_signal(y, 16000, vad=False)["score"]  # padded the way training pads


# ---------------------------------------------------------------- the command


def test_a_folder_is_walked_and_bad_files_get_an_error(
    bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "in"
    good = [
        write_signal(root / "a.wav", _voice(0.8), 16000),
        write_signal(root / "deep" / "er" / "b.flac", _voice(1.1, seed=1), 16000),
    ]
    (root / "notes.txt").write_text("not listed: not an audio suffix")
    bad = write_bad_files(root / "bad")
    code, out = _cli(capsys, "predict", "--model", str(bundles["cnn_lstm"]), "--no-vad", "--format", "csv", str(root))
    assert code == 1
    rows = {r["path"]: r for r in _csv_rows(out)}
    assert set(rows) == {str(p) for p in [*good, *bad.values()]}
    for p in good:
        assert rows[str(p)]["error"] == "" and np.isfinite(float(rows[str(p)]["score"]))
    for name, p in bad.items():
        r = rows[str(p)]
        assert r["score"] == "" and r["decision"] == "", name
        assert r["error"].split(":")[0] in {"empty", "corrupt", "unsupported", "non_finite", "silent", "too_short"}
    code, _ = _cli(capsys, "predict", "--model", str(bundles["cnn_lstm"]), "--no-vad", *map(str, good))
    assert code == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["--scope", "first", "--window-s", "1"],  # one crop has no windows
        ["--aggregate", "max"],
        ["--scope", "all"],
        ["--runtime", "tflite"],
        ["--window-s", "0"],
        ["--window-s", "-2"],
        ["--window-s", "abc"],
        ["--format", "xml"],
        ["--batch-size", "0"],
    ],
)
def test_usage_errors_exit_2(bundles: dict[str, Path], tmp_path: Path, argv: list[str]) -> None:
    path = write_signal(tmp_path / "a.wav", _voice(0.5), 16000)
    try:
        code = main(["predict", "--model", str(bundles["xgboost"]), *argv, str(path)])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2


def test_no_files_and_no_bundle_exit_2(bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    path = write_signal(tmp_path / "a.wav", _voice(0.5), 16000)
    assert main(["predict", "--model", str(bundles["xgboost"]), str(tmp_path / "empty")]) == 2
    assert "no audio files" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path), str(path)]) == 2
    assert "not a model bundle" in capsys.readouterr().err
    assert main(["predict", "--models-dir", str(tmp_path / "empty"), str(path)]) == 2
    assert "no trained model" in capsys.readouterr().err


def test_csv_and_json_outputs_parse(bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    paths = [
        str(write_signal(tmp_path / "a.wav", _voice(3.0), 16000)),
        str(write_signal(tmp_path / "b.wav", _voice(0.4, seed=2), 16000)),
    ]
    model = ["--model", str(bundles["cnn_lstm"]), "--no-vad"]
    _, out = _cli(capsys, "predict", *model, "--format", "csv", *paths)
    header = out.splitlines()[0].split(",")
    assert header == [
        *["path", "score", "llr", "prob_bonafide", "decision", "duration_s", "error"],
        *["speech_s", "n_windows", "min_window_start_s"],
    ]
    plain = _csv_rows(out)
    assert [r["n_windows"] for r in plain] == ["3", "1"]  # whole by default: three 1-s windows
    _, out = _cli(capsys, "predict", *model, "--format", "csv", "--window-s", "1", "--hop-s", "0.5", *paths)
    rows = _csv_rows(out)
    assert float(rows[1]["min_window_start_s"]) == 0.0
    _, out = _cli(capsys, "predict", *model, "--format", "json", "--window-s", "1", "--hop-s", "0.5", *paths)
    data = json.loads(out)
    assert [len(r["windows"]) for r in data] == [5, 1]
    assert float(rows[0]["min_window_start_s"]) == data[0]["min_window"]["start_s"]
    assert set(data[0]["windows"][0]) == {"start_s", "end_s", "score", "llr", "prob_bonafide", "decision", "speech"}
    assert float(rows[0]["score"]) == pytest.approx(np.mean([w["score"] for w in data[0]["windows"]]))
    _, out = _cli(capsys, "predict", *model, "--format", "json", *paths)
    assert [r["score"] for r in json.loads(out)] == [float(r["score"]) for r in plain]
    _, out = _cli(capsys, "predict", *model, "--format", "json", "--scope", "first", *paths)
    first = json.loads(out)
    assert [r["n_windows"] for r in first] == [1, 1] and first[1]["score"] == data[1]["score"]


def test_table_is_coloured_only_on_a_terminal_without_no_color(
    bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deepfake_audio import cli

    path = str(write_signal(tmp_path / "a.wav", _voice(0.5), 16000))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"")
    code, out = _cli(capsys, "predict", "--model", str(bundles["cnn_lstm"]), "--no-vad", path, str(bad))
    assert code == 1 and "\x1b[" not in out
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["path", "score", "llr", "P(bonafide)", "decision"]
    assert lines[1].startswith(path) and "error" in lines[2] and "empty" in lines[2]
    row = {
        "path": "x.wav",
        "score": 0.5,
        "llr": 1.0,
        "prob_bonafide": 0.73,
        "decision": "spoof",
        "duration_s": 1.0,
        "error": None,
    }
    assert "\x1b[31mspoof" in format_table([row], colour=True)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert cli._use_colour(Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not cli._use_colour(Tty())
    assert not cli._use_colour(io.StringIO())


# ---------------------------------------------------------------- whole files and the speech check


def _real_speech() -> np.ndarray | None:
    """A real recorded utterance shipped in an installed package (CMU ARCTIC, via pysptk), at 16 kHz."""
    try:
        import pysptk.util
    except ImportError:
        return None
    y, sr = sf.read(pysptk.util.example_audio_file(), dtype="float32")
    from deepfake_audio.audio import resample

    return resample(y, orig_sr=sr, target_sr=16000)


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.4 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def test_whole_is_the_default_and_first_is_the_pipeline_crop(predictors: dict[str, Predictor]) -> None:
    predictor = predictors["cnn_lstm"]
    y = _voice(4.5, seed=9)
    whole = predictor.score_signal(y, 16000, vad=False)
    spans = [(w.start_s, w.end_s) for w in whole["windows"]]
    assert spans == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (3.5, 4.5)]
    scores = np.array([w.score for w in whole["windows"]])
    assert whole["score"] == pytest.approx(scores.mean(), abs=1e-12) and whole["aggregate"] == "mean"
    assert predictor.score_signal(y, 16000, vad=False, aggregate="median")["score"] == pytest.approx(np.median(scores))
    assert predictor.score_signal(y, 16000, vad=False, aggregate="min")["score"] == pytest.approx(scores.min())
    first = predictor.score_signal(y, 16000, vad=False, scope="first")
    assert first["score"] == predictor.score_signals([y])[0]  # the first second, as the features stage crops
    assert first["score"] == pytest.approx(scores[0], abs=1e-6)


def test_a_tone_is_no_speech_and_is_not_scored(predictors: dict[str, Predictor], tmp_path: Path) -> None:
    predictor = predictors["cnn_lstm"]
    result = predictor.score_signal(_tone(3.0), 16000)
    assert result["decision"] == "no_speech" and result["score"] is None and result["min_window"] is None
    assert all(w.decision == "no_speech" and w.speech is False and w.score is None for w in result["windows"])
    path = write_signal(tmp_path / "tone.wav", _tone(3.0), 16000)
    row = predictor.predict_files([path])[0]
    assert row["decision"] == "no_speech" and row["error"] is None and row["speech_s"] < 0.25


def test_windows_without_speech_leave_the_aggregate(predictors: dict[str, Predictor]) -> None:
    speech = _real_speech()
    if speech is None:
        pytest.skip("pysptk (the demo corpus's real speech) is not installed")
    predictor = predictors["cnn_lstm"]
    y = np.concatenate([speech[:32000], _tone(3.0)])  # 2 s of a real utterance, then 3 s of a tone
    result = predictor.score_signal(y, 16000)
    speech_marks = [w.speech for w in result["windows"]]
    assert speech_marks == [True, True, False, False, False]
    scored = [w.score for w in result["windows"] if w.speech]
    assert result["score"] == pytest.approx(np.mean(scored), abs=1e-12)
    assert result["decision"] in ("bonafide", "spoof") and 0.5 < result["speech_s"] <= 2.5
    unchecked = predictor.score_signal(y, 16000, vad=False)
    assert [w.score for w in unchecked["windows"][:2]] == pytest.approx(scored, abs=1e-9)
    windows = list(predictor.stream([y[i : i + 4000] for i in range(0, len(y), 4000)], 16000))
    assert [w.speech for w in windows] == speech_marks  # the stream checks each window the same way


# ---------------------------------------------------------------- models


def test_best_bundle_is_the_lowest_dev_eer(bundles: dict[str, Path], tmp_path: Path) -> None:
    for name, eer in (("b_worse", 0.3), ("a_best", 0.1), ("c_mid", 0.2)):
        shutil.copytree(bundles["xgboost"], tmp_path / name)
        config = json.loads((tmp_path / name / "config.json").read_text())
        (tmp_path / name / "config.json").write_text(json.dumps({**config, "dev_eer": eer}))
    (tmp_path / "not_a_bundle").mkdir()
    assert best_bundle(tmp_path) == tmp_path / "a_best"
    assert [(b["name"], b["dev_eer"], b["model"]) for b in list_bundles(tmp_path)] == [
        ("a_best", 0.1, "xgboost"),
        ("b_worse", 0.3, "xgboost"),
        ("c_mid", 0.2, "xgboost"),
    ]
    with pytest.raises(ValueError, match="no trained model"):
        best_bundle(tmp_path / "not_a_bundle")


def test_load_says_what_is_not_a_bundle(bundles: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no config.json"):
        Predictor.load(tmp_path)
    with pytest.raises(ValueError, match="no such folder"):
        Predictor.load(tmp_path / "missing")
    shutil.copy(bundles["cnn_lstm"] / "config.json", tmp_path / "config.json")
    with pytest.raises(ValueError, match="no weights"):
        Predictor.load(tmp_path)
    predictor = Predictor.load(bundles["cnn_lstm"])
    assert (predictor.model_name, predictor.sample_rate, predictor.window_s) == ("cnn_lstm", 16000, 1.0)
    assert predictor.threshold == predictor.config["threshold"]


# ---------------------------------------------------------------- stream


def _s16le(y: np.ndarray) -> bytes:
    return (np.clip(y, -1, 1) * 32767).astype("<i2").tobytes()


def test_stream_prints_one_json_line_per_window(
    bundles: dict[str, Path],
    predictors: dict[str, Predictor],
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    y = _voice(3.25, seed=5)
    data = _s16le(y)

    class Stdin:
        buffer = io.BytesIO(data)

    monkeypatch.setattr(sys, "stdin", Stdin())
    code, out = _cli(
        capsys, "stream", "--model", str(bundles["cnn_lstm"]), "--no-vad", "--window-s", "1", "--hop-s", "0.5"
    )
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    # full windows every 0.5 s, then one more that ends at the end
    assert [(w["start_s"], w["end_s"]) for w in lines] == [
        (0.0, 1.0),
        (0.5, 1.5),
        (1.0, 2.0),
        (1.5, 2.5),
        (2.0, 3.0),
        (2.25, 3.25),
    ]
    # the same windows and scores as scoring the decoded signal whole
    quantised = np.frombuffer(data, "<i2").astype(np.float32) / 32768
    expected = predictors["cnn_lstm"].score_signal(quantised, 16000, window_s=1.0, hop_s=0.5, vad=False)["windows"]
    assert [w["score"] for w in lines] == pytest.approx([w.score for w in expected], abs=1e-6)
    assert [w["decision"] for w in lines] == [w.decision for w in expected]


def test_each_window_is_out_as_soon_as_its_samples_are_in(predictors: dict[str, Predictor]) -> None:
    stream = WindowStream(predictors["xgboost"], sample_rate=16000, window_s=1.0, hop_s=0.5)
    y = _voice(2.2)
    assert stream.push(y[:12000]) == []  # 0.75 s
    assert [w.start_s for w in stream.push(y[12000:16000])] == [0.0]  # 1.0 s: the first window
    assert [w.start_s for w in stream.push(y[16000:33000])] == [0.5, 1.0]  # 2.0625 s: 1.5 needs 2.5 s
    assert [(w.start_s, w.end_s) for w in stream.push(y[33000:])] == []
    assert [(w.start_s, w.end_s) for w in stream.close()] == [(1.2, 2.2)]  # the tail
    assert len(stream._buffer) <= 16000 + 3200  # one window (and a chunk) kept, not the stream


def test_stream_resamples_other_rates(predictors: dict[str, Predictor]) -> None:
    predictor = predictors["cnn_lstm"]
    y = _voice(3.0, sample_rate=8000, seed=6)
    chunks = [y[i : i + 1000] for i in range(0, len(y), 1000)]
    windows = list(predictor.stream(chunks, 8000, window_s=1.0, vad=False))
    assert [(w.start_s, w.end_s) for w in windows] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    whole = predictor.score_signal(y, 8000, window_s=1.0, vad=False)["windows"]
    # a streaming resampler matches the one-shot one except near the signal's end
    assert [w.score for w in windows[:2]] == pytest.approx([w.score for w in whole[:2]], abs=1e-3)


def test_stream_follows_a_growing_file_until_it_goes_idle(
    bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = _s16le(_voice(2.0, seed=8))
    path = tmp_path / "live.raw"
    path.write_bytes(b"")
    step = 3201  # an odd byte count: samples split across writes

    def writer() -> None:
        for i in range(0, len(data), step):
            time.sleep(0.01)
            with path.open("ab") as fh:
                fh.write(data[i : i + step])

    thread = threading.Thread(target=writer)
    thread.start()
    t0 = time.perf_counter()
    code, out = _cli(
        capsys,
        "stream",
        "--model",
        str(bundles["xgboost"]),
        "--input",
        str(path),
        "--idle-s",
        "0.4",
        "--no-vad",
        "--window-s",
        "0.5",
    )
    elapsed = time.perf_counter() - t0
    thread.join()
    assert code == 0
    assert [json.loads(line)["start_s"] for line in out.splitlines()] == [0.0, 0.5, 1.0, 1.5]
    assert elapsed < 10  # it stopped after going idle


def test_pcm_chunks_keep_samples_split_across_reads() -> None:
    samples = np.array([0, 1, -1, 32767, -32768, 1234], dtype="<i2")

    class Trickle(io.BytesIO):
        def read1(self, n: int = -1) -> bytes:
            return super().read(3)

    got = np.concatenate(list(pcm_chunks(Trickle(samples.tobytes()), sample_format="s16le")))
    np.testing.assert_array_equal(got, samples.astype(np.float32) / 32768)
    floats = np.array([0.5, -0.25, 1.0], dtype="<f4")
    got = np.concatenate(list(pcm_chunks(io.BytesIO(floats.tobytes()), sample_format="f32le")))
    np.testing.assert_array_equal(got, floats)
    with pytest.raises(ValueError, match="known"):
        next(pcm_chunks(io.BytesIO(b""), sample_format="u8"))
