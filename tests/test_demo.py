"""The demo corpus: inventory, attack assignment, channel matching, determinism, missing engines."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepfake_audio.errors import MissingEngineError, ParamError
from deepfake_audio.params import from_dict
from deepfake_audio.sources import demo
from deepfake_audio.sources import engines as eng

HAVE_DEBIAN_SPEECH = demo.KTUBERLING.is_dir() and demo.KLETTRES.is_dir() and demo.POCKETSPHINX.is_dir()


def _voice(duration_s: float, sample_rate: int, seed: int) -> np.ndarray:
    """A voice-like test signal: a gliding 120-180 Hz harmonic tone with silence around it."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = 120 + 60 * t / duration_s
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    y = sum(np.sin(k * phase) / k for k in range(1, 12)) * 0.2 + rng.normal(0, 0.002, n)
    y[: n // 5] = rng.normal(0, 0.001, n // 5)  # lead silence
    y[-n // 5 :] = rng.normal(0, 0.001, n // 5)  # trail silence
    return y.astype(np.float32)


@pytest.fixture
def ogg_clip(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "word.ogg"
    path.parent.mkdir()
    sf.write(path, _voice(1.5, 22050, 0), 22050, format="OGG", subtype="VORBIS", compression_level=0.6)
    return path


@pytest.fixture
def tiny_inventory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[demo.Bonafide]:
    """Three bona fide clips in two formats and rates, standing in for the Debian packages."""
    items = []
    for i, (sr, fmt, sub) in enumerate(((22050, "OGG", "VORBIS"), (16000, "WAV", "PCM_16"), (44100, "OGG", "VORBIS"))):
        path = tmp_path / "inv" / f"clip{i}.{'ogg' if fmt == 'OGG' else 'wav'}"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, _voice(1.0 + 0.3 * i, sr, i), sr, format=fmt, subtype=sub)
        items.append(demo.Bonafide(path, f"spk{i}", "en", f"word {i}", "test"))
    monkeypatch.setattr(demo, "inventory", lambda exclude=(): items)
    return items


def test_text_from_ktuberling_file_names() -> None:
    assert demo._text_from_filename("patata_ulleresdesol") == "ulleresdesol"
    assert demo._text_from_filename("egypt_palm-tree") == "palm tree"
    assert demo._text_from_filename("ball") == "ball"


def test_assignment_is_balanced_distinct_and_respects_what_engines_can_say() -> None:
    items = [demo.Bonafide(Path(f"/x/{i}.wav"), f"s{i % 5}", "en", f"w{i}" if i % 4 else None, "t") for i in range(90)]
    items.append(demo.Bonafide(Path("/x/arabic.wav"), "ar", "ar", "ن", "t"))
    attacks = [e.attack for e in eng.all_engines()]
    plan = demo.assign_attacks(items, attacks, per_clip=2, seed=0)
    assert all(len(p) == 2 and len(set(p)) == 2 for p in plan)
    kinds = {e.attack: e.kind for e in eng.all_engines()}
    for item, picked in zip(items, plan):
        if item.text is None:  # no transcript: vocoders only
            assert {kinds[a] for a in picked} == {"vocoder"}
    english_only = {
        e.attack
        for e in eng.all_engines()
        if e.kind == "tts" and e.languages() is not None and "ar" not in e.languages()
    }
    assert not set(plan[-1]) & english_only, "an English-only engine cannot read Arabic script"
    counts = Counter(a for p in plan for a in p)
    assert max(counts.values()) - min(counts.values()) <= 8, counts
    assert plan == demo.assign_attacks(items, attacks, per_clip=2, seed=0)
    assert plan != demo.assign_attacks(items, attacks, per_clip=2, seed=1)


def test_select_bonafide_caps_each_speaker_deterministically() -> None:
    items = [demo.Bonafide(Path(f"/x/{s}/{i}.wav"), s, "en", "w", "t") for s in "abc" for i in range(10)]
    chosen = demo.select_bonafide(items, per_speaker=4, seed=0)
    assert Counter(i.speaker for i in chosen) == {"a": 4, "b": 4, "c": 4}
    assert chosen == demo.select_bonafide(items, per_speaker=4, seed=0)
    assert chosen != demo.select_bonafide(items, per_speaker=4, seed=5)


def test_channel_gives_spoof_the_source_rate_silence_loudness_and_codec(ogg_clip: Path) -> None:
    y, sr = sf.read(ogg_clip, dtype="float32")
    channel = demo.describe_channel(ogg_clip, y, sr)
    assert channel.codec == "VORBIS" and channel.sample_rate == 22050
    assert len(channel.lead) > 0.1 * sr and len(channel.trail) > 0.1 * sr
    tts = np.concatenate([np.zeros(4000), _voice(0.8, 16000, 9)[3000:-3000] * 3, np.zeros(4000)]).astype(np.float32)
    out = demo.apply_channel(tts, 16000, channel, keep_timing=False)
    # The spoof starts and ends with the source's own silence (up to codec error)...
    assert np.allclose(out[: len(channel.lead) // 2], channel.lead[: len(channel.lead) // 2], atol=0.02)
    # ... is at the source's speech loudness, and has been through the lossy codec.
    core = out[len(channel.lead) : len(out) - len(channel.trail)]
    assert demo._rms(core) == pytest.approx(channel.speech_rms, rel=0.25)
    no_codec = demo.apply_channel(tts, 16000, demo.Channel(**{**channel.__dict__, "codec": "pcm"}), keep_timing=False)
    assert not np.array_equal(out, no_codec)
    vocoded = demo.apply_channel(y * 0.5, sr, channel, keep_timing=True)
    assert len(vocoded) == len(y)


def test_unknown_and_too_many_attacks_are_param_errors() -> None:
    with pytest.raises(ParamError, match="A42"):
        from_dict(demo.DemoOptions, {"attacks": ["A42"]}, prefix="data.sources[0]")
    with pytest.raises(ParamError, match="spoofs_per_bonafide"):
        from_dict(demo.DemoOptions, {"attacks": ["A07"], "spoofs_per_bonafide": 2}, prefix="data.sources[0]")


def test_missing_engine_fails_before_any_work_naming_the_package(
    monkeypatch: pytest.MonkeyPatch, tiny_inventory, tmp_path: Path
) -> None:
    festival = eng.get_engine("A02")
    monkeypatch.setattr(type(festival), "available", lambda self: False)
    options = from_dict(demo.DemoOptions, {"attacks": ["A02", "A07"], "spoofs_per_bonafide": 1}, prefix="d")
    with pytest.raises(MissingEngineError, match="festival"):
        demo.build_demo(options, out_dir=tmp_path / "out", n_jobs=1)
    assert not (tmp_path / "out").exists()


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.flac"))
    }


@pytest.mark.slow
@pytest.mark.skipif(
    not all(eng.get_engine(a).available() for a in ("A01", "A07", "A08")),
    reason="espeak-ng, pyworld or librosa missing",
)
def test_build_is_deterministic_and_matches_source_rates(tiny_inventory, tmp_path: Path) -> None:
    options = from_dict(demo.DemoOptions, {"attacks": ["A01", "A07", "A08"], "spoofs_per_bonafide": 2}, prefix="d")
    first = demo.build_demo(options, out_dir=tmp_path / "a", n_jobs=2)
    second = demo.build_demo(options, out_dir=tmp_path / "b", n_jobs=1)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert len(first) == 3 * 3 and (first["label"] == "spoof").sum() == 6
    cols = ["utt_id", "label", "speaker", "attack", "sample_rate", "duration_s", "engine", "engine_version", "voice"]
    assert first[cols].equals(second[cols])
    for _, row in first.iterrows():
        assert sf.info(row["path"]).samplerate == row["sample_rate"]
    by_speaker = first.groupby("speaker")["sample_rate"].nunique()
    assert (by_speaker == 1).all(), "every spoof keeps its source clip's sample rate"
    assert set(first.loc[first.label == "spoof", "engine_version"]) and "" not in set(first["engine_version"])
    voices = first.set_index("attack")["voice"]
    assert set(voices.loc[["-", "A07", "A08"]]) == {"-"}  # bona fide and copy-synthesis keep the source's voice
    espeak = first[first.attack == "A01"]
    assert espeak["voice"].tolist() == [eng.get_engine("A01").voice_name(lang, 0) for lang in espeak["language"]]


@pytest.mark.skipif(not HAVE_DEBIAN_SPEECH, reason="Debian speech packages not installed")
def test_inventory_has_enough_distinct_speakers_and_no_duplicate_audio() -> None:
    items = demo.inventory()
    assert len({i.speaker for i in items}) >= 30
    digests = [hashlib.sha1(i.path.read_bytes()).hexdigest() for i in items]
    assert len(digests) == len(set(digests))


def test_plan_does_not_depend_on_where_the_checkout_lives() -> None:
    """Clips inside a venv have machine-specific paths; seeds and order must use their origin."""

    def items(root: str) -> list[demo.Bonafide]:
        return [
            demo.Bonafide(
                Path(f"{root}/site-packages/pkg/{i}.wav"), f"s{i % 3}", "en", None, "pkg", origin=f"pkg:{i}.wav"
            )
            for i in range(12)
        ]

    attacks = [e.attack for e in eng.all_engines()]
    a, b = items("/home/alice/repo/.venv"), items("/ci/clone/.venv")
    chosen_a = demo.select_bonafide(a, per_speaker=3, seed=0)
    chosen_b = demo.select_bonafide(b, per_speaker=3, seed=0)
    assert [i.origin for i in chosen_a] == [i.origin for i in chosen_b]
    assert demo.assign_attacks(chosen_a, attacks, per_clip=2, seed=0) == demo.assign_attacks(
        chosen_b, attacks, per_clip=2, seed=0
    )


@pytest.mark.skipif(not HAVE_DEBIAN_SPEECH, reason="Debian speech packages not installed")
def test_inventory_origins_carry_no_venv_path() -> None:
    assert not [i.origin for i in demo.inventory() if ".venv" in i.origin or "site-packages" in i.origin]


@pytest.mark.skipif(not eng.get_engine("A07").available(), reason="pyworld missing")
def test_a_text_an_engine_cannot_say_costs_that_spoof_only(
    tiny_inventory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    flite = eng.get_engine("A05")

    def speak(self, texts, language, seed):  # "word 1" is what espeak-ng does to unpointed Hebrew
        if texts == ["word 1"]:
            raise RuntimeError("A05 flite produced only silence")
        return [(0.1 * np.sin(np.arange(8000, dtype=np.float32) / 9.0), 8000) for _ in texts]

    monkeypatch.setattr(type(flite), "available", lambda self: True)
    monkeypatch.setattr(type(flite), "_synthesize_many", speak)
    monkeypatch.setattr(type(flite), "version", lambda self: "flite test")
    options = from_dict(demo.DemoOptions, {"attacks": ["A05", "A07"], "spoofs_per_bonafide": 2}, prefix="d")
    with caplog.at_level(logging.WARNING):
        manifest = demo.build_demo(options, out_dir=tmp_path / "out", n_jobs=1)
    assert sorted(manifest["utt_id"].str.split("_").str[0]) == ["A05", "A05", "A07", "A07", "A07", "bf", "bf", "bf"]
    assert "A05_spk1_clip1" not in set(manifest["utt_id"])
    assert "no A05 spoof of" in caplog.text and "5 of 6 planned spoofs made" in caplog.text


def test_exclude_bonafide_is_checked() -> None:
    with pytest.raises(ParamError, match="exclude_bonafide"):
        from_dict(demo.DemoOptions, {"exclude_bonafide": ["no-such-package"]}, prefix="d")
    with pytest.raises(ParamError, match="leaves no bona fide"):
        from_dict(demo.DemoOptions, {"exclude_bonafide": list(demo.PROVIDERS)}, prefix="d")


@pytest.mark.skipif(not (demo.ASTERISK / demo.ASTERISK_VOICES[0][0]).is_dir(), reason="asterisk prompts not installed")
def test_asterisk_prompts_are_read_sentences_with_their_transcripts() -> None:
    items = demo._asterisk()
    english = [i for i in items if i.language == "en"]
    french = [i for i in items if i.language == "fr"]
    assert len(english) > 300 and len(french) > 300
    assert {i.speaker for i in english} == {"asterisk-allison"} and {i.speaker for i in french} == {"asterisk-june"}
    by_name = {i.path.stem: i.text for i in english}
    assert by_name["check-number-dial-again"] == "Please check the number and dial again."
    assert "beep" not in by_name and "ascending-2tone" not in by_name  # tones are not speech
    assert all(i.text is None for i in french)  # no French transcript ships: vocoders only
    assert not {"beep", "ascending-2tone"} & {i.path.stem for i in french}
    without = demo.inventory(exclude=("asterisk-core-sounds",))
    assert not [i for i in without if i.speaker.startswith("asterisk")]
