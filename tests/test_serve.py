"""``deepfake-audio serve``: the HTTP API on a tiny real bundle, through FastAPI's TestClient.

Generated voice-like signals are not speech to a voice-activity detector, so the requests that
check scores turn the speech check off (``vad=false``); tests/test_vad.py and test_predict.py
check the speech check itself, and one test here checks that the API reports it.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepfake_audio.predict import Predictor, ScoringOptions
from deepfake_audio.serve import Batcher, ServeLimits, create_app
from tests.bundles import session_bundles
from tests.conftest import synth

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    return Predictor.load(session_bundles(tmp_path_factory)["cnn_lstm"])


@pytest.fixture(scope="module")
def client(predictor: Predictor) -> TestClient:
    with TestClient(create_app(predictor, ServeLimits(max_bytes=2_000_000, max_duration_s=30.0))) as c:
        yield c


def _voice(seconds: float, seed: int = 0) -> np.ndarray:
    return synth("harmonic", n_samples=int(seconds * SR), sample_rate=SR, seed=seed)


def _wav(y: np.ndarray, sr: int = SR, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=fmt, subtype="FLOAT" if fmt == "WAV" else None)
    return buf.getvalue()


def _post_file(client: TestClient, data: bytes, name: str = "clip.wav", **query: str):
    return client.post("/v1/score", params={"vad": "false", **query}, files={"file": (name, data)})


def test_health_and_models(client: TestClient, predictor: Predictor) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["model"] == predictor.bundle_dir.name
    (model,) = client.get("/v1/models").json()["models"]
    assert model["model"] == "cnn_lstm" and model["runtime"] == "torch"
    assert model["window_s"] == predictor.window_s and model["threshold"] == predictor.threshold
    assert model["calibration"]["slope"] == predictor.calibration.slope


def test_an_upload_scores_as_predict_does(client: TestClient, predictor: Predictor, tmp_path: Path) -> None:
    y = _voice(0.8)
    path = tmp_path / "clip.wav"
    path.write_bytes(_wav(y))
    expected = predictor.predict_files([path], vad=False)[0]
    got = _post_file(client, path.read_bytes())
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["model"] == predictor.bundle_dir.name and body["error"] is None
    for key in ("score", "llr", "prob_bonafide"):
        assert body[key] == pytest.approx(expected[key], abs=1e-6)
    assert body["decision"] == expected["decision"] and body["duration_s"] == pytest.approx(0.8)
    assert body["n_windows"] == 1 and len(body["windows"]) == 1


def test_raw_pcm_at_another_rate_scores_as_the_same_signal(client: TestClient, predictor: Predictor) -> None:
    y = synth("harmonic", n_samples=8000 * 2, sample_rate=8000, seed=3)
    pcm = np.round(y * 32767).astype("<i2")
    got = client.post(
        "/v1/score",
        params={"sample_rate": "8000", "format": "s16le", "vad": "false"},
        content=pcm.tobytes(),
        headers={"content-type": "audio/pcm"},
    )
    assert got.status_code == 200, got.text
    expected = predictor.score_signal(pcm.astype(np.float32) / 32768, 8000, vad=False)
    assert got.json()["score"] == pytest.approx(expected["score"], abs=1e-6)
    assert got.json()["duration_s"] == pytest.approx(2.0)


def test_a_long_file_is_scored_whole_in_windows(client: TestClient, predictor: Predictor) -> None:
    y = _voice(6.5, seed=2)
    whole = _post_file(client, _wav(y)).json()
    assert whole["scope"] == "whole" and whole["n_windows"] == 7  # six 1-s windows and the tail
    scores = [w["score"] for w in whole["windows"]]
    assert whole["score"] == pytest.approx(float(np.mean(scores)), abs=1e-9)
    assert whole["min_window"]["score"] == min(scores)
    first = _post_file(client, _wav(y), scope="first").json()
    assert first["n_windows"] == 1 and first["score"] == pytest.approx(scores[0], abs=1e-6)
    median = _post_file(client, _wav(y), aggregate="median").json()
    assert median["score"] == pytest.approx(float(np.median(scores)), abs=1e-9)


def test_a_tone_is_no_speech_not_a_verdict(client: TestClient) -> None:
    t = np.arange(3 * SR) / SR
    tone = (0.4 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)
    body = client.post("/v1/score", files={"file": ("tone.wav", _wav(tone))}).json()
    assert body["decision"] == "no_speech" and body["score"] is None and body["error"] is None
    assert all(w["decision"] == "no_speech" and w["speech"] is False for w in body["windows"])


BAD = {
    # name: (request kwargs, status, reason)
    "no body": (
        dict(content=b"", headers={"content-type": "audio/pcm"}, params={"sample_rate": "16000"}),
        400,
        "empty",
    ),
    "json body": (dict(json={"audio": [0.1, 0.2]}), 415, "unsupported_type"),
    "no file field": (dict(data={"other": "x"}, files={"notfile": ("a.wav", b"RIFF")}), 400, "no_file"),
    "text file": (dict(files={"file": ("notes.txt", b"hello")}), 415, "type"),
    "not audio": (dict(files={"file": ("clip.wav", b"RIFF....WAVEfmt garbage" * 10)}), 422, None),
    "empty file": (dict(files={"file": ("clip.wav", b"")}), 422, "empty"),
    "pcm without rate": (dict(content=b"\0\1" * 100, headers={"content-type": "audio/pcm"}), 400, "no_sample_rate"),
    "odd pcm bytes": (
        dict(content=b"\0\1\2", headers={"content-type": "audio/pcm"}, params={"sample_rate": "16000"}),
        422,
        "corrupt",
    ),
    "bad format": (
        dict(content=b"\0\1", headers={"content-type": "audio/pcm"}, params={"sample_rate": "16000", "format": "u8"}),
        422,
        "bad_option",
    ),
    "bad scope": (dict(files={"file": ("clip.wav", None)}, params={"scope": "all"}), 422, "bad_option"),
    "bad window": (dict(files={"file": ("clip.wav", None)}, params={"window_s": "abc"}), 422, "bad_option"),
    "negative hop": (dict(files={"file": ("clip.wav", None)}, params={"hop_s": "-1"}), 422, "bad_option"),
    "silent": (dict(files={"file": ("clip.wav", "silence")}), 422, "silent"),
    "too short": (dict(files={"file": ("clip.wav", "short")}), 422, "too_short"),
    "nan samples": (
        dict(
            content=np.full(1600, np.nan, "<f4").tobytes(),
            headers={"content-type": "audio/pcm"},
            params={"sample_rate": "16000", "format": "f32le"},
        ),
        422,
        "non_finite",
    ),
    "too long": (dict(files={"file": ("clip.wav", "long")}), 413, "too_long"),
    "too large": (dict(content=b"\0" * 2_000_002, headers={"content-type": "audio/pcm"}), 413, "too_large"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_every_bad_request_is_a_4xx_json_error_and_the_server_goes_on(client: TestClient, name: str) -> None:
    kwargs, status, reason = BAD[name]
    kwargs = dict(kwargs)
    if "files" in kwargs and kwargs["files"].get("file", (None, b""))[1] in (None, "silence", "short", "long"):
        fname, what = kwargs["files"]["file"]
        y = {
            None: _voice(1.0),
            "silence": np.zeros(SR, np.float32),
            "short": _voice(0.05),
            "long": _voice(31.0),
        }[what]
        kwargs["files"] = {"file": (fname, _wav(y, fmt="FLAC") if what == "long" else _wav(y))}
    got = client.post("/v1/score", **kwargs)
    assert got.status_code == status, got.text
    error = got.json()["error"]
    assert error["message"]
    if reason is not None:
        assert error["reason"] == reason
    ok = _post_file(client, _wav(_voice(1.0)))  # the worker survived
    assert ok.status_code == 200 and ok.json()["score"] is not None


def test_unknown_paths_and_methods_are_json_4xx(client: TestClient) -> None:
    assert client.get("/v2/nothing").status_code == 404
    assert client.get("/v2/nothing").json()["error"]["reason"] == "not_found"
    assert client.get("/v1/score").status_code == 405


def test_concurrent_requests_score_as_serial_ones(client: TestClient) -> None:
    clips = [_wav(_voice(1.0 + 0.5 * i, seed=i)) for i in range(8)]
    serial = [_post_file(client, c).json()["score"] for c in clips]
    results: dict[int, float] = {}

    def post(i: int) -> None:
        results[i] = _post_file(client, clips[i]).json()["score"]

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(8)] == pytest.approx(serial, abs=1e-6)


def test_the_in_flight_limit_answers_503(predictor: Predictor, monkeypatch: pytest.MonkeyPatch) -> None:
    slow = threading.Event()
    original = predictor.prepare

    def prepare(y: np.ndarray, options: ScoringOptions | None = None):
        slow.wait(5)
        return original(y, options)

    monkeypatch.setattr(predictor, "prepare", prepare)
    with TestClient(create_app(predictor, ServeLimits(max_in_flight=1))) as c:
        first: dict = {}
        t = threading.Thread(target=lambda: first.update(r=_post_file(c, _wav(_voice(1.0)))))
        t.start()
        deadline = time.monotonic() + 5
        while c.get("/healthz").json()["in_flight"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        busy = _post_file(c, _wav(_voice(1.0)))
        slow.set()
        t.join()
    assert busy.status_code == 503 and busy.json()["error"]["reason"] == "busy"
    assert busy.headers["retry-after"] == "1"
    assert first["r"].status_code == 200


def test_the_batcher_batches_waiting_requests_and_survives_a_failure() -> None:
    sizes: list[int] = []

    def run(xs: list[np.ndarray]) -> np.ndarray:
        sizes.append(len(xs))
        if any(np.isnan(x).any() for x in xs):
            raise RuntimeError("boom")
        return np.array([float(x.sum()) for x in xs])

    batcher = Batcher(run, max_batch=4, wait_s=0.3)
    try:
        futures = [batcher.submit([np.full(2, i, np.float32)] * 2) for i in range(3)]  # 6 inputs
        assert [f.result(5).tolist() for f in futures] == [[0.0, 0.0], [2.0, 2.0], [4.0, 4.0]]
        assert sizes == [4, 2]  # one wait, two model calls of at most max_batch
        bad = batcher.submit([np.full(2, np.nan, np.float32)])
        with pytest.raises(RuntimeError, match="boom"):
            bad.result(5)
        assert batcher.submit([np.ones(2, np.float32)]).result(5).tolist() == [2.0]
        assert batcher.submit([]).result(1).tolist() == []
    finally:
        batcher.close()


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        ServeLimits(max_in_flight=0)
    with pytest.raises(ValueError, match="batch_wait_ms"):
        ServeLimits(batch_wait_ms=-1)


def test_models_shows_the_card_a_bundle_carries(predictor: Predictor, tmp_path: Path) -> None:
    import shutil

    bundle = tmp_path / "shipped"
    shutil.copytree(predictor.bundle_dir, bundle)
    (bundle / "MODEL_CARD.md").write_text("# Model card: shipped\n\nCross-corpus EER: 40%\n", encoding="utf-8")
    with TestClient(create_app(Predictor.load(bundle))) as c:
        (model,) = c.get("/v1/models").json()["models"]
    assert model["name"] == "shipped" and "Cross-corpus EER: 40%" in model["card"]


def test_the_command_refuses_a_missing_bundle_and_bad_limits(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from deepfake_audio.cli import main

    assert main(["serve", "--model", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["serve", "--model", str(tmp_path), "--batch-wait-ms", "5000"]) == 2
    assert "batch_wait_ms" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--max-in-flight", "0"])


def test_limit_threads_caps_torch() -> None:
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from deepfake_audio.serve import limit_threads

    before = torch.get_num_threads()
    try:
        with threadpool_limits(limits=None):  # restores the BLAS/OpenMP limits on exit
            limit_threads(1)
            assert torch.get_num_threads() == 1
            assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    finally:
        torch.set_num_threads(before)
