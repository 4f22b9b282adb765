"""A bundle's network as ONNX or TorchScript, checked against the bundle, and scored without it.

``deepfake-audio export --format onnx data/models/cnn`` writes ``data/models/cnn-onnx/``, itself a
bundle: the source's ``config.json`` plus an ``exported`` record, the exported file
(``model.onnx`` or ``model.ts``) and the source's ``MODEL_CARD.md`` when it has one. The record::

    {"format", "file", "sha256", "source", "source_weights", "source_weights_sha256",
     "opset" (ONNX only), "torch_version", "frame_groups", "input_shape", "max_batch_size",
     "parity": {"n_inputs", "max_abs_diff", "tolerance", "seed"}}

The exported graph is the function the kind's ``score`` runs: the network in eval mode and
:func:`deepfake_audio.training.bonafide_score` on its output (the bona fide logit of a two-logit
network, an OC-softmax cosine as is), from the model input :class:`deepfake_audio.predict.Predictor`
makes (standardised frames ``(batch, n_features, n_frames)``, or audio ``(batch, 1, n_samples)``
for waveform kinds, whose torch front-ends are exported with them) to raw scores ``(batch,)``. The
batch axis is dynamic; every other axis is fixed by the bundle's config.

Export checks itself: a seeded batch of random inputs of the model's input shape is scored by the
bundle and by the export (at other batch sizes than the one exported with), and an export whose
scores differ by more than :data:`PARITY_TOLERANCE` is refused. The folder is written under a
temporary name and renamed, so a failed export leaves nothing behind.

:func:`load_exported` is what ``Predictor.load(..., runtime="onnx" | "torchscript")`` scores
with. The ONNX runtime imports onnxruntime and numpy only: no torch, and neither
:mod:`deepfake_audio.models` nor :mod:`deepfake_audio.bundle` (whose kinds import torch), which is
why the export records what those would compute (``frame_groups``, ``input``).

ONNX is written by torch's ``torch.export``-based exporter (``dynamo=True``, which needs
onnxscript): the TorchScript-based one cannot export LCNN's Max-Feature-Map with a dynamic batch
nor the complex STFT of ``lcnn_wave``'s front-end. TorchScript is written by ``torch.jit.trace``,
which torch has deprecated; prefer ONNX.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_audio.io import sha256_file, write_json

log = logging.getLogger(__name__)

__all__ = [
    "EXPORTABLE",
    "FORMATS",
    "NOT_EXPORTABLE",
    "RUNTIMES",
    "ExportedBundle",
    "ParityError",
    "add_parser",
    "cmd_export",
    "default_out_dir",
    "export_bundle",
    "exported_format",
    "input_shape",
    "load_exported",
    "parity_inputs",
]

EXPORTABLE = (
    "cnn",
    "cnn_lstm",
    "cnn_bilstm_attention",
    "lstm",
    "cnn2d",
    "lcnn",
    "aasist",
    "rawnet2",
    "lcnn_wave",
)
"""Model kinds whose bundles export, to either format (OC-softmax heads included)."""

NOT_EXPORTABLE = {
    "xgboost": "gradient-boosted trees, not a torch network; its model.json already loads without torch",
    "logistic": "a linear scorer in numpy (logistic.json), not a torch network; it needs no export",
    **{
        name: "it scores through a self-supervised front-end (wav2vec 2.0, WavLM or HuBERT from transformers, "
        "loaded from ssl.checkpoint) that is not exported with the back-end"
        for name in ("ssl_linear", "ssl_attm", "ssl_aasist")
    },
}
"""Why the other registered kinds do not export."""

OPSET = 18
"""ONNX opset written (onnxruntime 1.31 runs up to 23; 17 brought the STFT and DFT ops)."""

PARITY_TOLERANCE = 1e-4
"""Largest absolute difference between the bundle's and the export's raw scores that passes."""

PARITY_INPUTS = 8
"""Random inputs export scores with both; the export runs them in batches of 1, 4 and 3."""

EXAMPLE_BATCH = 2
"""Batch size of the example the graph is exported with (parity runs other sizes)."""

CONFIG = "config.json"
MODEL_CARD = "MODEL_CARD.md"

BUNDLE_SCHEMA_VERSION = 1
"""``deepfake_audio.bundle.SCHEMA_VERSION``, repeated here because that module imports the model
registry (tests/test_export.py checks they agree)."""


class ParityError(ValueError):
    """The export scores differently from its bundle."""


# ---------------------------------------------------------------- formats


@dataclasses.dataclass(frozen=True)
class Format:
    """An export format: its file, how a network is written to it and how it is run.

    Attributes:
        name: ``--format`` value and runtime name.
        label: for messages.
        file: the file name in the export folder.
        write: ``write(network, example, path, opset)`` writes the network, traced on ``example``.
        load: ``load(path, threads) -> run`` where ``run(x float32 (n, ...)) -> (n,)`` scores.
        records_opset: whether the record has an ``opset``.
    """

    name: str
    label: str
    file: str
    write: Callable[[Any, Any, Path, int], None]
    load: Callable[[Path, int | None], Callable[[np.ndarray], np.ndarray]]
    records_opset: bool = False


def _write_onnx(network: Any, example: Any, path: Path, opset: int) -> None:
    import onnx
    import torch

    # The exporter warns about the optional torchvision ops it cannot register (none is used here).
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # torch.export's notes on its own internals (deprecated helpers it calls, nn.LSTM's weight
            # list it rebinds while tracing); the parity check tells whether the graph is right.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message=r"The tensor attributes .* were assigned during export")
            torch.onnx.export(
                network,
                (example,),
                str(path),
                dynamo=True,
                input_names=["x"],
                output_names=["score"],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                opset_version=opset,
                external_data=False,  # one self-contained file; these networks are far below protobuf's 2 GB
                verbose=False,
            )
    finally:
        registration.setLevel(level)
    onnx.checker.check_model(str(path))


def _default_threads() -> int:
    # The CPUs this process may run on: onnxruntime's own default counts the host's physical
    # cores, which oversubscribes a container limited to fewer.
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def _load_onnx(path: Path, threads: int | None) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or _default_threads()
    options.inter_op_num_threads = 1  # one chain of ops: parallel branches would only contend for the same cores
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: x})[0]

    return run


def _write_torchscript(network: Any, example: Any, path: Path, opset: int) -> None:
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        # Shape checks in forward() become constants: the input shape is fixed but for the batch.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        traced = torch.jit.trace(network, example, check_trace=False)
        torch.jit.save(traced, str(path))


def _load_torchscript(path: Path, threads: int | None) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    # threads: torch's thread count is global to the process, so it is left as the caller set it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).float().numpy()

    return run


_FORMATS = {
    f.name: f
    for f in (
        Format("onnx", "ONNX", "model.onnx", _write_onnx, _load_onnx, records_opset=True),
        Format("torchscript", "TorchScript", "model.ts", _write_torchscript, _load_torchscript),
    )
}

FORMATS = tuple(_FORMATS)
"""Export formats, as ``--format`` names them."""

RUNTIMES = ("auto", "torch", *FORMATS)
"""What ``Predictor.load(runtime=...)`` accepts: ``auto`` is the export's format, else ``torch``."""


def _format(name: str) -> Format:
    if name not in _FORMATS:
        raise ValueError(f"format={name!r}; known: {', '.join(FORMATS)}")
    return _FORMATS[name]


# ---------------------------------------------------------------- scoring an export


@dataclasses.dataclass
class ExportedBundle:
    """An exported bundle loaded for scoring; it stands in for :class:`deepfake_audio.bundle.Bundle`.

    Attributes:
        config: its config.json (the source's, plus ``exported``).
        format: a name of :data:`FORMATS`.
        run: scores one batch, float32 ``(n, ...)`` -> ``(n,)``.
    """

    config: dict
    format: str
    run: Callable[[np.ndarray], np.ndarray]

    @property
    def input(self) -> str:
        """What it reads (``frames`` or ``waveform``), as its source was trained."""
        return str(self.config["input"])

    @property
    def frame_groups(self) -> tuple[str, ...] | None:
        """The frame groups the model reads (``None``: all of its input), as the source bundle gave them."""
        groups = self.config["exported"]["frame_groups"]
        return None if groups is None else tuple(groups)

    def score(self, x: Any, *, batch_size: int = 256) -> np.ndarray:
        """Raw scores ``(n,)`` float64 of model inputs ``x`` ``(n, ...)``; higher means more bona fide.

        Batches are capped at the record's ``max_batch_size`` (audio inputs), as the kinds cap theirs.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        cap = self.config["exported"].get("max_batch_size")
        size = min(batch_size, cap) if cap else batch_size
        out = [
            np.asarray(self.run(np.ascontiguousarray(x[i : i + size], dtype=np.float32))).reshape(-1)
            for i in range(0, len(x), size)
        ]
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0, dtype=np.float64)


def _read_config(bundle_dir: Path) -> dict:
    path = bundle_dir / CONFIG
    if not bundle_dir.is_dir():
        raise ValueError(f"{bundle_dir} is not a model bundle: no such folder")
    if not path.is_file():
        raise ValueError(f"{bundle_dir} is not a model bundle: it has no {CONFIG}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a bundle config: {exc}") from exc
    if not isinstance(config, dict):
        raise ValueError(f"{path} is not a bundle config: not a JSON object")
    version = config.get("schema_version", 0)
    if version > BUNDLE_SCHEMA_VERSION:
        raise ValueError(
            f"{path} has schema_version {version}; this deepfake-audio reads up to {BUNDLE_SCHEMA_VERSION}: upgrade it"
        )
    return config


def exported_format(bundle_dir: Path | str) -> str | None:
    """The format of a folder written by :func:`export_bundle` (from its config.json), else ``None``."""
    path = Path(bundle_dir) / CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    record = config.get("exported") if isinstance(config, dict) else None
    fmt = record.get("format") if isinstance(record, dict) else None
    return str(fmt) if fmt is not None else None


def default_out_dir(bundle_dir: Path | str, fmt: str) -> Path:
    """Where an export goes by default: ``<bundle_dir>-<fmt>`` beside the bundle."""
    bundle_dir = Path(bundle_dir)
    return bundle_dir.parent / f"{bundle_dir.name}-{fmt}"


def _export_command(fmt: str, source: Path | str) -> str:
    return f"`deepfake-audio export --format {fmt} {source}`"


def _no_export(bundle_dir: Path, fmt: Format, record: Any) -> str:
    """Why ``bundle_dir`` cannot be run by ``fmt``, and what to do."""
    if isinstance(record, dict) and "format" in record:
        source = record.get("source", "its source bundle")
        other = _FORMATS[record["format"]].label if record["format"] in _FORMATS else repr(record["format"])
        return (
            f"{bundle_dir} has no {fmt.label} export: it is the {other} export of {source}; "
            f"run {_export_command(fmt.name, source)}"
        )
    message = f"{bundle_dir} has no {fmt.label} export: run {_export_command(fmt.name, bundle_dir)}"
    sibling = default_out_dir(bundle_dir, fmt.name)
    if exported_format(sibling) == fmt.name:
        message += f", or load {sibling}, which holds one"
    return message


def _warn_if_stale(bundle_dir: Path, record: dict) -> None:
    """Warn when the source bundle is here and its weights are not the ones exported."""
    weights = Path(record.get("source", "")) / record.get("source_weights", "")
    if record.get("source_weights") and weights.is_file() and sha256_file(weights) != record["source_weights_sha256"]:
        log.warning(
            "%s was exported from other weights than %s holds now: export again with %s",
            bundle_dir,
            weights,
            _export_command(record["format"], record["source"]),
        )


def load_exported(bundle_dir: Path | str, runtime: str, *, threads: int | None = None) -> ExportedBundle:
    """Load a folder written by :func:`export_bundle` to score with ``runtime``.

    ``onnx`` imports onnxruntime (on the CPU) and numpy, never torch; ``torchscript`` imports torch.

    Args:
        runtime: a name of :data:`FORMATS`; the folder must be an export to it.
        threads: onnxruntime's intra-op threads (default: the CPUs this process may use).
            TorchScript uses torch's process-wide setting.

    Raises:
        ValueError: not a bundle, no export of that format (the message gives the command that
            makes one), its file is missing, or its SHA-256 is not the one recorded.
    """
    bundle_dir = Path(bundle_dir)
    if runtime not in _FORMATS:
        raise ValueError(f"runtime={runtime!r}: an exported bundle runs on {', '.join(FORMATS)}")
    fmt = _FORMATS[runtime]
    config = _read_config(bundle_dir)
    record = config.get("exported")
    if not isinstance(record, dict) or record.get("format") != fmt.name:
        raise ValueError(_no_export(bundle_dir, fmt, record))
    path = bundle_dir / record["file"]
    again = _export_command(fmt.name, record.get("source", bundle_dir))
    if not path.is_file():
        raise ValueError(f"{bundle_dir} is an incomplete {fmt.label} export: {record['file']} is missing; run {again}")
    digest = sha256_file(path)
    if digest != record["sha256"]:
        raise ValueError(
            f"{path} is not the file exported: its sha256 is {digest[:12]}..., config.json records "
            f"{record['sha256'][:12]}...; run {again}"
        )
    _warn_if_stale(bundle_dir, record)
    return ExportedBundle(config, fmt.name, fmt.load(path, threads))


# ---------------------------------------------------------------- exporting


def _scoring_network(model: Any) -> Any:
    """``model`` as its kind's ``score`` runs it: one raw score per clip, ``(B,)``."""
    import torch

    from deepfake_audio.training import bonafide_score

    class ScoringNetwork(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return bonafide_score(self.net(x))  # (B,) or (B, 2) logits -> (B,)

    return ScoringNetwork(model).eval()


def input_shape(config: dict) -> tuple[int, ...]:
    """The shape of one model input, from a bundle's config: ``(n_features, n_frames)`` for frame
    models (``summary``), ``(1, n_samples)`` for audio."""
    if config["input"] == "frames":
        summary = config["summary"]
        return int(summary["n_features"]), int(summary["n_frames"])
    return 1, int(config["n_samples"])


def parity_inputs(config: dict, *, n: int = PARITY_INPUTS, seed: int = 0) -> np.ndarray:
    """A seeded batch of random model inputs, float32 ``(n, *input_shape(config))``: standard
    normal frames (standardised features), or noise clips at peak levels from about -40 to -6 dBFS."""
    rng = np.random.default_rng(seed)
    shape = (n, *input_shape(config))
    if config["input"] == "frames":
        return rng.standard_normal(shape).astype(np.float32)
    gain = rng.uniform(0.01, 0.5, size=(n, 1, 1))
    return np.clip(gain * rng.standard_normal(shape) / 3.0, -1.0, 1.0).astype(np.float32)


def _check_exportable(bundle_dir: Path, config: dict) -> None:
    record = config.get("exported")
    if isinstance(record, dict):
        raise ValueError(f"{bundle_dir} is an export (of {record.get('source', '?')}): export its source bundle")
    name = config.get("model")
    if name not in EXPORTABLE:
        why = NOT_EXPORTABLE.get(name, "no export is defined for this kind")
        raise ValueError(f"{bundle_dir}: {name} bundles do not export: {why} (exportable: {', '.join(EXPORTABLE)})")


def _check_out(out_dir: Path, bundle_dir: Path) -> None:
    if out_dir.resolve() == bundle_dir.resolve():
        raise ValueError(f"--out {out_dir} is the bundle itself: pick another folder")
    if out_dir.exists() and exported_format(out_dir) is None:
        raise ValueError(f"{out_dir} exists and is not an export: remove it or pick another --out")


def _publish(tmp: Path, out_dir: Path) -> None:
    """Rename the finished ``tmp`` onto ``out_dir``, replacing an earlier export there."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700 folders; give it the mode mkdir would
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
        os.replace(out_dir, old / out_dir.name)
        os.replace(tmp, out_dir)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out_dir)


def export_bundle(
    bundle_dir: Path | str,
    fmt: str,
    out_dir: Path | str | None = None,
    *,
    opset: int = OPSET,
    n_inputs: int = PARITY_INPUTS,
    tolerance: float = PARITY_TOLERANCE,
    seed: int = 0,
) -> Path:
    """Export a bundle's network to ``fmt`` and check that it scores as the bundle does.

    Args:
        bundle_dir: a bundle of a kind in :data:`EXPORTABLE`.
        fmt: a name of :data:`FORMATS`.
        out_dir: the export folder (default :func:`default_out_dir`); an earlier export there is
            replaced, any other folder is refused.
        opset: the ONNX opset.
        n_inputs: random inputs of the parity check (at least 1).
        tolerance: the largest absolute score difference accepted.
        seed: of the random inputs.

    Returns:
        the export folder.

    Raises:
        ValueError: not a bundle, a kind that does not export, a bad ``fmt`` or ``out_dir``.
        ParityError: the export's scores differ by more than ``tolerance``; nothing is written.
    """
    spec = _format(fmt)
    if n_inputs < 1:
        raise ValueError(f"n_inputs={n_inputs} must be at least 1")
    from deepfake_audio.bundle import check_bundle, load_bundle

    bundle_dir = Path(bundle_dir)
    config = _read_config(bundle_dir)
    _check_exportable(bundle_dir, config)
    check_bundle(bundle_dir)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(bundle_dir, spec.name)
    _check_out(out_dir, bundle_dir)

    import torch

    from deepfake_audio.models.waveform import SCORE_BATCH  # waveform kinds cap their batches at this

    t0 = time.perf_counter()
    bundle = load_bundle(bundle_dir)
    config = {**bundle.config, "input": bundle.input}
    x = parity_inputs(config, n=n_inputs, seed=seed)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        spec.write(_scoring_network(bundle.model), torch.from_numpy(x[:EXAMPLE_BATCH]), tmp / spec.file, opset)
        record = {
            "format": spec.name,
            "file": spec.file,
            "sha256": sha256_file(tmp / spec.file),
            "source": bundle_dir.as_posix(),
            "source_weights": bundle.kind.weights,
            "source_weights_sha256": sha256_file(bundle_dir / bundle.kind.weights),
            **({"opset": opset} if spec.records_opset else {}),
            "torch_version": torch.__version__,
            "frame_groups": None if bundle.frame_groups is None else list(bundle.frame_groups),
            "input_shape": ["batch", *input_shape(config)],
            "max_batch_size": SCORE_BATCH if bundle.input == "waveform" else None,
        }
        write_json(tmp / CONFIG, {**config, "exported": record})
        if (bundle_dir / MODEL_CARD).is_file():
            shutil.copy2(bundle_dir / MODEL_CARD, tmp / MODEL_CARD)
        exported = load_exported(tmp, spec.name)
        expected = bundle.score(x)
        # Batches of 1, 4 and 3 (with 8 inputs): other sizes than the example's, and a lone clip.
        got = np.concatenate([exported.score(x[:1], batch_size=1), exported.score(x[1:], batch_size=4)])
        diff = float(np.max(np.abs(got - expected)))
        if not diff <= tolerance:  # NaN fails too
            raise ParityError(
                f"{bundle_dir}: the {spec.label} export scores differently from the bundle: max |difference| "
                f"{diff:.3g} on {n_inputs} random inputs exceeds {tolerance:g}; nothing was written"
            )
        record["parity"] = {"n_inputs": n_inputs, "max_abs_diff": diff, "tolerance": tolerance, "seed": seed}
        write_json(tmp / CONFIG, {**config, "exported": record})
        _publish(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "export done in %.1f s: %s (%s) -> %s, max |score difference| %.2g on %d random inputs",
        time.perf_counter() - t0,
        bundle_dir,
        config["model"],
        out_dir / spec.file,
        diff,
        n_inputs,
    )
    return out_dir


# ---------------------------------------------------------------- the command


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``export`` to the ``deepfake-audio`` subcommands."""
    p = subparsers.add_parser(
        "export",
        help="write a bundle's network as ONNX or TorchScript (ONNX scores without torch)",
        description="Export a bundle's network, checked against the bundle on random inputs, into a "
        "folder that is itself a bundle: predict, stream and serve load it with --runtime onnx or "
        "torchscript (or auto). ONNX runs on onnxruntime without torch. Exit status: 0 written, 1 "
        "the export scored differently from the bundle (nothing written), 2 a usage error.",
    )
    p.add_argument("--format", required=True, choices=FORMATS, help="onnx (onnxruntime, no torch) or torchscript")
    p.add_argument("bundle", type=Path, metavar="BUNDLE", help="the bundle folder, e.g. data/models/cnn_lstm")
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="the export folder (default: BUNDLE-FORMAT beside it; replaced)"
    )
    p.set_defaults(func=cmd_export)
    return p


def cmd_export(args: argparse.Namespace) -> int:
    """Run ``deepfake-audio export``; prints the folder, file and parity figure."""
    try:
        out = export_bundle(args.bundle, args.format, args.out)
    except ParityError as exc:
        print(f"deepfake-audio export: error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"deepfake-audio export: error: {exc}", file=sys.stderr)
        return 2
    record = _read_config(out)["exported"]
    parity = record["parity"]
    print(
        f"{out}: {_FORMATS[record['format']].label} export of {args.bundle} ({record['file']}, sha256 "
        f"{record['sha256'][:12]}...); max |score difference| {parity['max_abs_diff']:.2g} on "
        f"{parity['n_inputs']} random inputs (limit {parity['tolerance']:g})"
    )
    return 0
