"""deepfake-audio: a reproducible DVC pipeline for spoofed-speech detection."""

from __future__ import annotations

__version__ = "0.1.0"

LABELS = {"bonafide": 1, "spoof": 0}
"""Numeric label convention: 1 = bona fide, 0 = spoof. Higher scores mean more bona fide."""
