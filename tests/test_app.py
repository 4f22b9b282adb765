"""The web page: its pure logic (deepfake_audio/webapp.py) and the page itself under Streamlit's AppTest.

Bundles are tiny real models (tests/bundles.py), trained once per session; clips are generated.
"""

from __future__ import annotations

import io
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepfake_audio import webapp
from deepfake_audio.predict import Predictor, best_bundle
from tests.bundles import session_bundles
from tests.conftest import synth

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app" / "streamlit_app.py"
TEST_EERS = {"xgboost": 0.125}  # cnn_lstm gets no metrics file: the page must say so


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return session_bundles(tmp_path_factory)


@pytest.fixture(scope="session")
def models_dir(bundles: dict[str, Path]) -> Path:
    return bundles["xgboost"].parent


@pytest.fixture(scope="session")
def metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("app_metrics")
    for name, eer in TEST_EERS.items():
        (root / f"{name}.json").write_text(json.dumps({"test": {"eer": eer, "accuracy": 0.9}}), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def predictors(bundles: dict[str, Path]) -> dict[str, Predictor]:
    return {name: Predictor.load(path) for name, path in bundles.items()}


def wav_bytes(
    *, kind: str = "speech", duration_s: float = 0.6, sample_rate: int = 16000, fmt: str = "WAV", seed: int = 0
) -> bytes:
    y = synth(kind, n_samples=int(duration_s * sample_rate), sample_rate=sample_rate, seed=seed)
    buf = io.BytesIO()
    sf.write(buf, y, sample_rate, format=fmt, **({"subtype": "PCM_16"} if fmt in ("WAV", "FLAC") else {}))
    return buf.getvalue()


# ------------------------------------------------------------------------------ upload checks


@pytest.mark.parametrize("name", ["a.wav", "b.FLAC", "c.Ogg", "dir/d.mp3"])
def test_check_upload_accepts_allowed_types_in_any_case(name: str) -> None:
    assert webapp.check_upload(name, 1000) == Path(name).suffix.lower().lstrip(".")


@pytest.mark.parametrize(
    "name, size, reason, says",
    [
        ("notes.txt", 100, "type", "'notes.txt' is a .txt file: upload a WAV, FLAC, OGG or MP3 file."),
        ("clip.m4a", 100, "type", "is a .m4a file"),
        ("clip", 100, "type", "'clip' has no file suffix"),
        ("clip.wav.exe", 100, "type", "is a .exe file"),
        ("clip.wav", 0, "empty", "0 bytes"),
        ("clip.wav", 20 * 2**20 + 1, "too_large", "the limit is 20 MB"),
    ],
)
def test_check_upload_rejects_with_a_clear_message(name: str, size: int, reason: str, says: str) -> None:
    with pytest.raises(webapp.UploadError, match=re.escape(says)) as info:
        webapp.check_upload(name, size)
    assert info.value.reason == reason


def test_check_upload_limit_is_inclusive_and_configurable() -> None:
    assert webapp.check_upload("a.wav", 20 * 2**20) == "wav"
    with pytest.raises(webapp.UploadError, match="limit is 1 MB"):
        webapp.check_upload("a.wav", 2**20 + 1, max_bytes=2**20)


# ------------------------------------------------------------------------------ models and metrics


def test_resolve_dirs_defaults_to_the_pipeline_layout(tmp_path: Path) -> None:
    models, metrics = webapp.resolve_dirs({}, root=tmp_path)
    assert models == tmp_path / "data" / "models"
    assert metrics == (tmp_path / "metrics").resolve()


def test_resolve_dirs_reads_the_environment(tmp_path: Path) -> None:
    env = {webapp.MODELS_DIR_ENV: str(tmp_path / "m" / "data" / "models")}
    models, metrics = webapp.resolve_dirs(env, root=Path("/nowhere"))
    assert models == tmp_path / "m" / "data" / "models"
    assert metrics == (tmp_path / "m" / "metrics").resolve()  # follows the models dir's pipeline
    env[webapp.METRICS_DIR_ENV] = str(tmp_path / "elsewhere")
    assert webapp.resolve_dirs(env, root=Path("/nowhere"))[1] == tmp_path / "elsewhere"


@pytest.mark.parametrize(
    "text, expected",
    [
        (json.dumps({"test": {"eer": 0.25}, "bench": {"eer": 0.5}}), 0.25),
        (json.dumps({"bench": {"eer": 0.5}}), None),  # no test block
        (json.dumps({"test": {"eer": None}}), None),
        (json.dumps({"test": {"eer": 1.5}}), None),  # not a fraction
        (json.dumps({"test": {"eer": "NaN"}}), None),
        ("{not json", None),
    ],
)
def test_read_test_eer(tmp_path: Path, text: str, expected: float | None) -> None:
    (tmp_path / "m.json").write_text(text, encoding="utf-8")
    assert webapp.read_test_eer(tmp_path, "m") == expected
    assert webapp.read_test_eer(tmp_path, "absent") is None


def test_format_eer() -> None:
    assert webapp.format_eer(0.175) == "17.5%"
    assert webapp.format_eer(None, missing="no test metrics") == "no test metrics"


@pytest.mark.parametrize("value, text", [(0.0, "0"), (0.01, "0.01"), (1.5, "1.5"), (4.0, "4"), (2.999, "3")])
def test_format_seconds(value: float, text: str) -> None:
    assert webapp.format_seconds(value) == text


@pytest.mark.parametrize(
    "value, text", [(0.0284, "+0.028"), (-1.0024, "-1.002"), (-0.0001, "+0.000"), (-0.0, "+0.000"), (2.0, "+2.000")]
)
def test_format_signed_never_shows_minus_zero(value: float, text: str) -> None:
    assert webapp.format_signed(value) == text


def test_model_choices_list_every_bundle_with_its_test_eer(models_dir: Path, metrics_dir: Path) -> None:
    choices, default = webapp.model_choices(models_dir, metrics_dir)
    by_name = {c.name: c for c in choices}
    assert set(by_name) == {"cnn_lstm", "xgboost"}
    assert choices[default].path.resolve() == best_bundle(models_dir).resolve()
    assert by_name["xgboost"].test_eer == TEST_EERS["xgboost"]
    assert by_name["xgboost"].label == "xgboost: test EER 12.5%"
    assert by_name["cnn_lstm"].test_eer is None
    assert by_name["cnn_lstm"].label == "cnn_lstm: no test metrics"
    for c in choices:
        assert c.dev_eer is not None and 0.0 <= c.dev_eer <= 1.0


def test_model_choices_empty_without_models(tmp_path: Path) -> None:
    assert webapp.model_choices(tmp_path / "missing", tmp_path) == ([], 0)
    (tmp_path / "empty").mkdir()
    assert webapp.model_choices(tmp_path / "empty", tmp_path) == ([], 0)


# ------------------------------------------------------------------------------ analysis


def test_analysis_of_a_short_clip_matches_the_predictor(predictors: dict[str, Predictor]) -> None:
    predictor = predictors["xgboost"]
    data = wav_bytes(duration_s=0.6)
    analysis = webapp.analyse_upload(data, "short.wav", predictor)
    y, sr = sf.read(io.BytesIO(data), dtype="float32")
    expected = predictor.score_signal(y, sr)
    assert analysis.score == pytest.approx(expected["score"])
    assert analysis.prob_bonafide == pytest.approx(expected["prob_bonafide"])
    assert analysis.decision == expected["decision"]
    assert analysis.decision_label == {"bonafide": "bona fide", "spoof": "spoof"}[analysis.decision]
    assert analysis.windows == ()  # not longer than the model's 1-s window
    assert analysis.duration_s == pytest.approx(0.6)
    n_mels = predictor.config["features"]["n_mels"]
    assert analysis.log_mel.shape == (n_mels, 1 + len(analysis.y) // analysis.hop_length)
    assert analysis.log_mel.dtype == np.float32 and np.isfinite(analysis.log_mel).all()


def test_analysis_of_a_long_clip_has_a_window_timeline(predictors: dict[str, Predictor]) -> None:
    predictor = predictors["cnn_lstm"]
    analysis = webapp.analyse_upload(wav_bytes(duration_s=3.5, seed=3), "long.flac", predictor)
    assert predictor.window_s == pytest.approx(1.0)
    assert len(analysis.windows) >= 3
    assert analysis.windows[0].start_s == pytest.approx(0.0)
    assert analysis.windows[-1].end_s <= analysis.duration_s + 1e-6
    assert all(w.end_s - w.start_s == pytest.approx(1.0) for w in analysis.windows)
    table = webapp.windows_table(analysis)
    assert [r["score"] for r in table] == [round(w.score, 3) for w in analysis.windows]
    assert {r["decision"] for r in table} <= {"bona fide", "spoof"}
    fig = webapp.timeline_figure(analysis)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time (s)" and "bona fide" in ax.get_ylabel()
    assert len(ax.collections) == len(analysis.windows)  # one bar per window


@pytest.mark.parametrize("fmt, name", [("FLAC", "c.flac"), ("OGG", "c.ogg"), ("MP3", "c.mp3")])
def test_every_allowed_type_is_analysed(predictors: dict[str, Predictor], fmt: str, name: str) -> None:
    analysis = webapp.analyse_upload(wav_bytes(fmt=fmt, duration_s=1.5, sample_rate=22050), name, predictors["xgboost"])
    assert analysis.sample_rate == 16000  # resampled to the model's rate
    assert analysis.duration_s == pytest.approx(1.5, abs=0.1)  # mp3 frames pad a little
    assert analysis.decision in ("bonafide", "spoof")


@pytest.mark.parametrize(
    "bad, reason, says",
    [
        ("zero_bytes", "empty", "empty"),
        ("truncated", "corrupt", "could not be decoded"),
        ("not_audio", "unsupported", "not recognised as WAV, FLAC, OGG"),
        ("nan", "non_finite", "NaN or infinite"),
        ("inf", "non_finite", "NaN or infinite"),
        ("silent", "silent", "silent"),
        ("too_short", "too_short", "too short|needs at least"),
    ],
)
def test_bad_files_get_a_clear_message(
    predictors: dict[str, Predictor], bad_files: dict[str, Path], bad: str, reason: str, says: str
) -> None:
    path = bad_files[bad]
    with pytest.raises(webapp.UploadError, match=says) as info:
        webapp.analyse_upload(path.read_bytes(), path.name, predictors["xgboost"])
    assert info.value.reason == reason


def test_a_clip_over_the_duration_limit_is_refused(predictors: dict[str, Predictor]) -> None:
    with pytest.raises(webapp.UploadError, match="up to 2 s") as info:
        webapp.analyse_upload(wav_bytes(duration_s=2.5), "long.wav", predictors["xgboost"], max_duration_s=2.0)
    assert info.value.reason == "too_long"


@pytest.mark.parametrize("data, fails", [(wav_bytes(), False), (b"not audio at all" * 10, True)])
def test_uploads_are_written_to_a_temporary_folder_and_deleted(
    predictors: dict[str, Predictor], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes, fails: bool
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    seen: list[Path] = []
    real_probe = webapp._probe_duration_s

    def spy(path: Path) -> float | None:
        seen.append(Path(path))
        assert Path(path).read_bytes() == data
        return real_probe(path)

    monkeypatch.setattr(webapp, "_probe_duration_s", spy)

    def analyse() -> webapp.Analysis:
        return webapp.analyse_upload(data, "../../evil name.wav", predictors["xgboost"])

    if fails:
        with pytest.raises(webapp.UploadError):
            analyse()
    else:
        assert analyse().filename == "../../evil name.wav"  # shown to the user, never used as a path
    assert len(seen) == 1
    assert seen[0].parent.parent == spool and seen[0].name == "upload.wav"  # our name, not the upload's
    assert list(spool.iterdir()) == []  # deleted, on success and on failure


# ------------------------------------------------------------------------------ figures


def test_waveform_envelope_keeps_every_extreme() -> None:
    y = np.zeros(10_001, dtype=np.float32)
    y[1234], y[9876] = 0.9, -0.7
    t_s, lo, hi = webapp.waveform_envelope(y, 1000, n_points=100)
    assert len(t_s) == len(lo) == len(hi) <= 100
    assert hi.max() == pytest.approx(0.9) and lo.min() == pytest.approx(-0.7)
    assert np.all(np.diff(t_s) > 0) and t_s[-1] <= len(y) / 1000
    with pytest.raises(ValueError):
        webapp.waveform_envelope(np.zeros(0, np.float32), 1000)


def test_figures_of_a_short_clip(predictors: dict[str, Predictor]) -> None:
    analysis = webapp.analyse_upload(wav_bytes(), "short.wav", predictors["xgboost"])
    wave = webapp.waveform_figure(analysis).axes[0]
    assert wave.get_xlim() == pytest.approx((0.0, analysis.duration_s))
    spec = webapp.spectrogram_figure(analysis)
    assert spec.axes[0].get_ylabel() == "mel band"
    assert spec.axes[0].images[0].get_array().shape == analysis.log_mel.shape
    with pytest.raises(ValueError, match="no per-window scores"):
        webapp.timeline_figure(analysis)


# ------------------------------------------------------------------------------ make app


def make_app_flags() -> list[str]:
    """The Streamlit flags of `make app` (the Makefile's APP_FLAGS), so the test serves the page as users get it."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    match = re.search(r"^APP_FLAGS\s*:=(.*)$", text, flags=re.MULTILINE)
    assert match, "the Makefile has no APP_FLAGS"
    return match.group(1).split()


def test_make_app_serves_on_localhost_with_the_upload_limit() -> None:
    flags = make_app_flags()
    assert flags[flags.index("--server.address") + 1] == "localhost"
    assert flags[flags.index("--server.maxUploadSize") + 1] == str(webapp.MAX_UPLOAD_MB)
    assert flags[flags.index("--browser.gatherUsageStats") + 1] == "false"
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "$(BIN)/streamlit run app/streamlit_app.py $(APP_FLAGS)" in recipe


# ------------------------------------------------------------------------------ the page (AppTest)


def app_test(monkeypatch: pytest.MonkeyPatch, models_dir: Path, metrics_dir: Path):
    from streamlit.testing.v1 import AppTest

    # AppTest runs the page as the `__main__` module and leaves it there; a later
    # multiprocessing "spawn" (the DDP test, Dask) would then re-run the page in every child,
    # which dies, and deadlocks the parent. Put the real __main__ back after the test.
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    monkeypatch.setenv(webapp.MODELS_DIR_ENV, str(models_dir))
    monkeypatch.setenv(webapp.METRICS_DIR_ENV, str(metrics_dir))
    return AppTest.from_file(str(APP), default_timeout=120)


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_page_without_models_says_to_run_dvc_repro(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = app_test(monkeypatch, tmp_path / "data" / "models", tmp_path / "metrics").run()
    assert not at.exception
    assert "No trained models found" in texts(at.error) and "dvc repro" in texts(at.error)
    assert len(at.file_uploader) == 0 and len(at.selectbox) == 0


def test_page_lists_the_models_and_waits_for_an_upload(
    monkeypatch: pytest.MonkeyPatch, models_dir: Path, metrics_dir: Path
) -> None:
    at = app_test(monkeypatch, models_dir, metrics_dir).run()
    assert not at.exception and not at.error
    box = at.selectbox[0]
    assert sorted(box.options) == ["cnn_lstm: no test metrics", "xgboost: test EER 12.5%"]
    assert Path(best_bundle(models_dir)).name == box.value  # the best model is the default
    assert "WAV, FLAC, OGG or MP3; up to 20 MB and 300 s" in at.file_uploader[0].label
    assert "Upload a WAV, FLAC, OGG or MP3 clip of up to 20 MB and 300 s" in texts(at.info)

    box.set_value("xgboost").run()
    assert "Test EER: **12.5%**" in texts(at.markdown)
    assert "no test metrics" not in texts(at.markdown)
    at.selectbox[0].set_value("cnn_lstm").run()
    assert "Test EER: _no test metrics_ (run `dvc repro` to evaluate it)" in texts(at.markdown)
    assert f"bundle `{models_dir / 'cnn_lstm'}`" in texts(at.caption)


def test_page_scores_an_upload(
    monkeypatch: pytest.MonkeyPatch, models_dir: Path, metrics_dir: Path, predictors: dict[str, Predictor]
) -> None:
    at = app_test(monkeypatch, models_dir, metrics_dir).run()
    at.selectbox[0].set_value("xgboost").run()
    data = wav_bytes(duration_s=3.0, seed=7)
    at.file_uploader[0].upload("speech.wav", data, "audio/wav").run()
    assert not at.exception and not at.error
    expected = webapp.analyse_upload(data, "speech.wav", predictors["xgboost"])
    decision = [m.value for m in at.markdown if m.value.startswith("### Decision:")]
    colour = "green" if expected.decision == "bonafide" else "red"
    assert decision == [f"### Decision: :{colour}[{expected.decision_label}]"]
    metrics = {m.label: m.value for m in at.main.metric}
    assert metrics["P(bona fide)"] == f"{expected.prob_bonafide:.1%}"
    assert metrics["Score"] == webapp.format_signed(expected.score)
    assert metrics["Duration"] == "3.0 s"
    assert [s.value for s in at.subheader] == ["Waveform", "Log-mel spectrogram", "Score over time"]
    low = expected.min_window
    assert low.score == min(w.score for w in expected.windows)
    assert f"scored in {len(expected.windows)} windows and its score is the mean of their scores" in texts(at.caption)
    assert (
        f"most spoof-like window is {webapp.format_seconds(low.start_s)} to {webapp.format_seconds(low.end_s)} s"
        in texts(at.caption)
    )


def test_page_shows_no_timeline_for_a_short_clip(
    monkeypatch: pytest.MonkeyPatch, models_dir: Path, metrics_dir: Path
) -> None:
    at = app_test(monkeypatch, models_dir, metrics_dir).run()
    at.file_uploader[0].upload("short.ogg", wav_bytes(fmt="OGG", duration_s=0.8), "audio/ogg").run()
    assert not at.exception and not at.error
    assert [s.value for s in at.subheader] == ["Waveform", "Log-mel spectrogram"]


@pytest.mark.parametrize(
    "name, data, says",
    [
        ("notes.txt", b"hello", "'notes.txt' is a .txt file: upload a WAV, FLAC, OGG or MP3 file."),
        ("broken.wav", b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x00" * 40, "could not be decoded"),
        ("text.mp3", b"this is not an mp3\n" * 50, "not really MP3 audio"),
        ("empty.flac", b"", "is empty (0 bytes)"),
    ],
)
def test_page_explains_a_bad_upload(
    monkeypatch: pytest.MonkeyPatch, models_dir: Path, metrics_dir: Path, name: str, data: bytes, says: str
) -> None:
    at = app_test(monkeypatch, models_dir, metrics_dir).run()
    at.file_uploader[0].upload(name, data).run()
    assert not at.exception
    assert says in texts(at.error)
    assert not [m for m in at.markdown if m.value.startswith("### Decision:")]


def test_a_clip_without_speech_is_refused_with_the_reason(predictors: dict[str, Predictor]) -> None:
    t = np.arange(32000) / 16000
    tone = (0.4 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, tone, 16000, format="WAV")
    with pytest.raises(webapp.UploadError, match="no speech") as info:
        webapp.analyse_upload(buf.getvalue(), "tone.wav", predictors["xgboost"])
    assert info.value.reason == "no_speech"


def test_windows_without_speech_are_shown_unscored(predictors: dict[str, Predictor]) -> None:
    predictor = predictors["cnn_lstm"]
    speech = synth("speech", n_samples=32000, sample_rate=16000)
    t = np.arange(32000) / 16000
    tone = (0.4 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, np.concatenate([speech, tone]), 16000, format="WAV")
    analysis = webapp.analyse_upload(buf.getvalue(), "half.wav", predictor)
    assert [w.score is None for w in analysis.windows] == [False, False, True, True]
    assert analysis.score == pytest.approx(np.mean([w.score for w in analysis.windows[:2]]))
    assert webapp.unscored_text(analysis) == " (2 windows without speech were not scored)"
    assert [r["score"] for r in webapp.windows_table(analysis)][2:] == [None, None]
    fig = webapp.timeline_figure(analysis)
    assert len(fig.axes[0].collections) == 2  # bars for the scored windows only


def test_page_shows_the_model_card(monkeypatch: pytest.MonkeyPatch, models_dir: Path, metrics_dir: Path) -> None:
    at = app_test(monkeypatch, models_dir, metrics_dir).run()
    at.selectbox[0].set_value("xgboost").run()
    assert "No model card yet" in texts(at.caption)
    card = models_dir.parent / "cards" / "xgboost" / "MODEL_CARD.md"  # where the card@ stage writes it
    card.parent.mkdir(parents=True)
    try:
        card.write_text("# Model card: xgboost\n\nEER on bench_dev: 38.73%\n", encoding="utf-8")
        at.selectbox[0].set_value("cnn_lstm").run()
        at.selectbox[0].set_value("xgboost").run()
        assert not at.exception
        assert [e.label for e in at.expander] == ["Model card: its data, metrics and limits"]
        assert "EER on bench_dev: 38.73%" in texts(at.expander[0].markdown)
    finally:
        card.unlink()
        card.parent.rmdir()
