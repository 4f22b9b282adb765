"""Exception families.

Audio faults (``AudioError`` and subclasses) are expected on real corpora: per-file workers catch
exactly this family and turn it into a row of the rejects table. Anything else is a bug and stops
the stage. ``ParamError`` reports a bad parameter by key, value and what is allowed.
"""

from __future__ import annotations

from deepfake_audio.params import ParamError  # noqa: F401 - defined with the params it reports on


class AudioError(Exception):
    """A file that cannot be used as audio. ``reason`` is a short, stable slug for reports."""

    reason = "audio_error"


class EmptyAudio(AudioError):
    reason = "empty"


class CorruptAudio(AudioError):
    reason = "corrupt"


class UnsupportedAudio(AudioError):
    reason = "unsupported"


class NonFiniteAudio(AudioError):
    reason = "non_finite"


class SilentAudio(AudioError):
    reason = "silent"


class TooShortAudio(AudioError):
    reason = "too_short"


class MissingEngineError(RuntimeError):
    """A speech engine or vocoder that the configured corpus needs is not installed."""
