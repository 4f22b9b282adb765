"""Torch front-ends: the ``log_mel``, ``lfcc`` and ``mfcc`` feature groups computed on the device.

A model that trains on augmented waveforms cannot read its features from the extracted tables; it
computes them in the forward pass. :class:`TorchFrontend` computes one frame group of
:mod:`deepfake_audio.features` from raw waveforms with the same arithmetic (centred STFT with
zero padding, periodic Hann window, power spectrum, the extractor's own filterbanks, dB floored
80 dB below each clip's peak, orthonormal DCT-II, librosa's Savitzky-Golay deltas), so a bundle
scores the same whichever path made its features. tests/test_torch_features.py holds the two
paths to a stated tolerance on generated audio.

The window, filterbanks, DCT and delta filters are non-persistent buffers: they follow the module
to its device but stay out of ``state_dict``. They are functions of ``features`` and ``audio``,
which a bundle stores in its config, so a loaded bundle rebuilds them exactly, and a model's
weights file holds only what was learned.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from deepfake_audio.features import DELTA_WIDTH, GROUPS, delta_matrix, linear_filterbank
from deepfake_audio.params import AudioParams, FeatureParams

SUPPORTED_GROUPS = ("log_mel", "lfcc", "mfcc")
"""Frame groups :class:`TorchFrontend` computes, in the registry's order."""

AMIN = 1e-10
"""Power floor before the log, as ``librosa.power_to_db``'s ``amin``."""

TOP_DB = 80.0
"""dB below each clip's peak where ``librosa.power_to_db`` floors its output."""


def _check_group(group: str) -> None:
    if group not in SUPPORTED_GROUPS:
        raise ValueError(f"TorchFrontend: unsupported group {group!r}; supported: {', '.join(SUPPORTED_GROUPS)}")


def frontend_rows(group: str, features: FeatureParams) -> int:
    """Rows of ``group``'s frames for ``features`` (deltas included), as the extractor lays them out.

    Raises:
        ValueError: when ``group`` is not one :class:`TorchFrontend` computes.
    """
    _check_group(group)
    return len(GROUPS[group].rows(features))


def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """The first ``n_out`` rows of the orthonormal DCT-II of length ``n_in``.

    ``dct_matrix(k, n) @ x`` equals ``scipy.fft.dct(x, type=2, norm="ortho", axis=0)[:k]``.

    Returns:
        float32 ``(n_out, n_in)``.
    """
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


def delta_filters(deltas: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """librosa's delta of each order 1 .. ``deltas`` as an interior filter and two edge maps.

    ``librosa.feature.delta`` (``mode="interp"``) is a Savitzky-Golay filter of
    :data:`DELTA_WIDTH` frames inside the clip and, in the first and last ``DELTA_WIDTH // 2``
    frames, the derivative of a polynomial fitted to the first or last ``DELTA_WIDTH`` frames. All
    three parts are read off :func:`deepfake_audio.features.delta_matrix` (the extractor's own map),
    so any clip of at least ``DELTA_WIDTH`` frames gets the extractor's result, at O(n_frames) cost.

    Returns:
        float32 ``(kernel, left, right)``: ``kernel (deltas, DELTA_WIDTH)``, the correlation
        weights of the interior; ``left`` and ``right (deltas, DELTA_WIDTH, DELTA_WIDTH // 2)``,
        mapping the first/last ``DELTA_WIDTH`` frames to the first/last ``DELTA_WIDTH // 2`` outputs.
    """
    half, n = DELTA_WIDTH // 2, 2 * DELTA_WIDTH + 1  # long enough for an interior frame
    full = delta_matrix(n, deltas)  # (n, deltas * n): input frame -> output frame, per order
    kernel, left, right = [], [], []
    for order in range(deltas):
        m = full[:, order * n : (order + 1) * n]
        kernel.append(m[DELTA_WIDTH - half : DELTA_WIDTH + half + 1, DELTA_WIDTH])  # output DELTA_WIDTH's inputs
        left.append(m[:DELTA_WIDTH, :half])
        right.append(m[n - DELTA_WIDTH :, n - half :])
    return (
        np.array(kernel, np.float32).reshape(deltas, DELTA_WIDTH),
        np.array(left, np.float32).reshape(deltas, DELTA_WIDTH, half),
        np.array(right, np.float32).reshape(deltas, DELTA_WIDTH, half),
    )


def power_to_db(power: torch.Tensor) -> torch.Tensor:
    """``librosa.power_to_db(power)`` of each clip: dB re 1.0, floored :data:`TOP_DB` below the clip's peak.

    Args:
        power: ``(B, rows, n_frames)`` power (not negative).

    Returns:
        dB of the same shape; the floor is per clip (its own maximum over rows and frames).
    """
    db = 10.0 * torch.log10(torch.clamp(power, min=AMIN))
    peak = db.amax(dim=(-2, -1), keepdim=True)
    return torch.maximum(db, peak - TOP_DB)


class TorchFrontend(torch.nn.Module):
    """One frame group of the feature extractor (``log_mel``, ``lfcc`` or ``mfcc``) in torch.

    Args:
        group: the feature group, one of :data:`SUPPORTED_GROUPS`.
        features: the extractor's params (STFT, filterbank and cepstrum options).
        audio: the audio params (the sample rate the filterbanks are built for).
        scaler: the train-fitted standardisation of the frame rows, as ``scaler.json["frames"]``
            holds it (``{"names", "mean", "std"}``, :meth:`deepfake_audio.scaling.Scaler.to_json`);
            the rows of ``group`` are picked by name. ``None``: unscaled features.

    Attributes:
        rows: the row names of the output, in order (``lfcc00``, ..., ``lfcc00_delta``, ...).
        n_rows: ``len(rows)``.

    Raises:
        ValueError: an unsupported group, or a scaler that lacks one of the group's rows.

    Keep the module's buffers in float32 (do not ``.half()`` a model that holds it): for mixed
    precision use autocast, which the forward pass turns off for itself.
    """

    def __init__(self, group: str, *, features: FeatureParams, audio: AudioParams, scaler: dict | None = None) -> None:
        import librosa

        super().__init__()
        _check_group(group)
        self.group = group
        self.n_fft = features.n_fft
        self.hop_length = features.hop_length
        self.rows = tuple(GROUPS[group].rows(features))
        self.n_rows = len(self.rows)
        sr = audio.sample_rate

        def buffer(name: str, value: np.ndarray | torch.Tensor) -> None:
            self.register_buffer(name, torch.as_tensor(value), persistent=False)

        # Periodic Hann, as librosa.filters.get_window("hann", n_fft, fftbins=True).
        buffer("window", torch.hann_window(self.n_fft, periodic=True, dtype=torch.float64).float())
        if group in ("log_mel", "mfcc"):
            basis = librosa.filters.mel(sr=sr, n_fft=self.n_fft, n_mels=features.n_mels, fmin=features.fmin)
        else:
            basis = linear_filterbank(sample_rate=sr, n_fft=self.n_fft, n_filters=features.lfcc.n_filters)
        buffer("filterbank", basis.astype(np.float32))  # (bands, 1 + n_fft // 2)
        cepstra = {"mfcc": features.mfcc, "lfcc": features.lfcc}.get(group)
        self.n_deltas = cepstra.deltas if cepstra is not None else 0
        n_coeffs = features.mfcc.n_mfcc if group == "mfcc" else features.lfcc.n_lfcc
        buffer("dct", dct_matrix(n_coeffs, basis.shape[0]) if cepstra is not None else np.zeros((0, 0), np.float32))
        kernel, left, right = delta_filters(self.n_deltas)
        buffer("delta_kernel", kernel[:, None, :])  # (deltas, 1, DELTA_WIDTH): conv1d weights
        buffer("delta_left", left)
        buffer("delta_right", right)
        self.scaled = scaler is not None
        mean, std = self._scaler_rows(scaler) if scaler is not None else (np.zeros(0), np.ones(0))
        # float64, as Scaler.transform_frames: the same float32 result, not one within rounding.
        buffer("mean", torch.tensor(mean, dtype=torch.float64)[:, None])
        buffer("std", torch.tensor(std, dtype=torch.float64)[:, None])

    def _scaler_rows(self, scaler: dict) -> tuple[np.ndarray, np.ndarray]:
        names = list(scaler["names"])
        missing = [r for r in self.rows if r not in names]
        if missing:
            raise ValueError(
                f"TorchFrontend({self.group!r}): the scaler has no row {missing[0]!r} "
                f"({len(missing)} of the group's {self.n_rows} rows missing); pass scaler.json's 'frames' entry"
            )
        index = [names.index(r) for r in self.rows]
        return np.asarray(scaler["mean"], np.float64)[index], np.asarray(scaler["std"], np.float64)[index]

    def n_frames(self, n_samples: int) -> int:
        """Frames of a clip of ``n_samples`` samples (centred frames, as the extractor's layout)."""
        return 1 + (n_samples + 2 * (self.n_fft // 2) - self.n_fft) // self.hop_length

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Features of a batch of clips.

        Args:
            waveform: float samples ``(B, n_samples)`` or ``(B, 1, n_samples)`` at the sample rate
                the module was built for; any length that gives at least ``DELTA_WIDTH`` frames
                when the group has deltas (``audio.n_samples`` reproduces the extractor's frames).

        Returns:
            float32 ``(B, n_rows, n_frames)``: the group's rows as the extractor computes them
            (dB, or cepstra of dB, and their deltas), standardised when the module has a scaler.
            Computed in float32 even under autocast.
        """
        if waveform.dim() == 3 and waveform.shape[1] == 1:
            waveform = waveform[:, 0]
        if waveform.dim() != 2:
            raise ValueError(
                f"TorchFrontend: expected a waveform of shape (B, n_samples) or (B, 1, n_samples), "
                f"got {tuple(waveform.shape)}"
            )
        n_frames = self.n_frames(waveform.shape[-1])
        if self.n_deltas and n_frames < DELTA_WIDTH:
            raise ValueError(
                f"TorchFrontend({self.group!r}): deltas need at least {DELTA_WIDTH} frames; "
                f"{waveform.shape[-1]} samples give {n_frames}"
            )
        # Half-precision FFTs and matmuls would move dB values by far more than the tolerance.
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            return self._features(waveform.float())

    def _features(self, y: torch.Tensor) -> torch.Tensor:
        spectrum = torch.stft(
            y,
            self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )  # (B, 1 + n_fft // 2, n_frames) complex64
        power = spectrum.real.square() + spectrum.imag.square()  # no sqrt: finite gradients at zero
        x = power_to_db(self.filterbank @ power)  # (B, bands, n_frames) dB
        if self.group != "log_mel":
            x = self.dct @ x  # (B, n_coeffs, n_frames)
            x = torch.cat([x, *self._deltas(x)], dim=1) if self.n_deltas else x
        if self.scaled:
            x = ((x.double() - self.mean) / self.std).float()
        return x

    def _deltas(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Deltas of order 1 .. ``n_deltas`` of ``x (B, rows, n_frames)``, each of its shape."""
        batch, rows, n_frames = x.shape
        interior = F.conv1d(x.reshape(batch * rows, 1, n_frames), self.delta_kernel)  # (B * rows, deltas, T - 8)
        interior = interior.reshape(batch, rows, self.n_deltas, -1)
        left = torch.einsum("brt,dto->brdo", x[..., :DELTA_WIDTH], self.delta_left)  # (B, rows, deltas, 4)
        right = torch.einsum("brt,dto->brdo", x[..., -DELTA_WIDTH:], self.delta_right)
        full = torch.cat([left, interior, right], dim=-1)  # (B, rows, deltas, n_frames)
        return list(full.unbind(dim=2))
