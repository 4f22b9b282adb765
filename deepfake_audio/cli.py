"""The ``deepfake-audio`` command.

``predict`` scores audio files with a trained bundle, through the exact feature and scaler
pipeline stored in the bundle; ``stream`` scores raw PCM from stdin or a growing file window by
window (:mod:`deepfake_audio.predict`); ``serve`` puts a bundle behind an HTTP API
(:mod:`deepfake_audio.serve`); ``export`` writes a bundle's network as ONNX or TorchScript
(:mod:`deepfake_audio.export`). ``attacks`` lists the demo corpus's attacks and whether their
engines are installed. ``gate`` fails when a metric got worse than at a git revision
(:mod:`deepfake_audio.gate`). ``scores`` writes a split of a scores file as an official ASVspoof
evaluation package reads it (:mod:`deepfake_audio.score_files`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import TextIO

from deepfake_audio.logs import setup_logging
from deepfake_audio.predict import AGGREGATES, SCOPES, Predictor, ScoringOptions, best_bundle, expand_paths

log = logging.getLogger("deepfake_audio")

PROGRESS_MIN_FILES = 10
"""Fewer files than this get no progress bar."""

__all__ = ["best_bundle", "expand_paths", "format_table", "main"]


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    return value


def _usage_error(command: str, message: str) -> int:
    print(f"deepfake-audio {command}: error: {message}", file=sys.stderr)
    return 2


def _load_predictor(args: argparse.Namespace) -> tuple[Predictor | None, str | None]:
    """The Predictor of ``--model``, else of the best bundle under ``--models-dir``; else ``None``
    and what is wrong (a usage error)."""
    try:
        bundle_dir = args.model if args.model is not None else best_bundle(args.models_dir)
        predictor = Predictor.load(
            bundle_dir, runtime=getattr(args, "runtime", "auto"), threads=getattr(args, "threads", None)
        )
    except ValueError as exc:
        return None, str(exc)
    log.info(
        "model: %s (%s), %g s windows at %d Hz",
        predictor.bundle_dir,
        predictor.model_name,
        predictor.window_s,
        predictor.sample_rate,
    )
    return predictor, None


def _scoring_options(args: argparse.Namespace) -> ScoringOptions:
    """The ScoringOptions of the scoring flags (:func:`_scoring_flags`); ValueError when they clash."""
    return ScoringOptions(
        scope=getattr(args, "scope", "whole"),
        window_s=args.window_s,
        hop_s=args.hop_s,
        aggregate=getattr(args, "aggregate", "mean"),
        vad=not args.no_vad,
        min_speech_s=args.min_speech_s,
    )


PREDICT_COLUMNS = ["path", "score", "llr", "prob_bonafide", "decision", "duration_s", "error"]
CSV_COLUMNS = PREDICT_COLUMNS + ["speech_s", "n_windows", "min_window_start_s"]
COLOURS = {"bonafide": "\033[32m", "spoof": "\033[31m", "no_speech": "\033[36m", "error": "\033[33m"}
RESET = "\033[0m"


def _use_colour(stream: TextIO) -> bool:
    """ANSI colours only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    import os

    return stream.isatty() and "NO_COLOR" not in os.environ


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def format_table(rows: list[dict], *, colour: bool) -> str:
    """Aligned columns for people: path, score, LLR, P(bona fide), decision, duration, and the most
    spoof-like window when some file had several; an unreadable file shows its error instead."""
    windowed = any(r.get("n_windows", 0) > 1 for r in rows)
    header = ["path", "score", "llr", "P(bonafide)", "decision", "duration_s"] + (["min_window_s"] if windowed else [])
    body = []
    for r in rows:
        if r["error"] is not None:
            body.append([r["path"], "", "", "", "error", "", *([""] if windowed else []), r["error"]])
            continue
        cells = [
            r["path"],
            _fmt(r["score"], "+.4f"),
            _fmt(r["llr"], "+.2f"),
            _fmt(r["prob_bonafide"], ".3f"),
            r["decision"],
            f"{r['duration_s']:.2f}",
        ]
        if windowed:
            low = r["min_window"]
            cells.append("" if low is None else f"{low['start_s']:.2f}-{low['end_s']:.2f}")
        body.append(cells)
    n = len(header)
    widths = [max(len(c[i]) for c in [header, *body]) for i in range(n)]
    right = {1, 2, 3, 5}
    lines = []
    for cells in [header, *body]:
        parts = []
        for i, text in enumerate(cells[:n]):
            padded = text.rjust(widths[i]) if i in right else text.ljust(widths[i])
            if colour and i == 4 and text in COLOURS:
                padded = f"{COLOURS[text]}{padded}{RESET}"
            parts.append(padded)
        if len(cells) > n:  # the error message, unaligned at the end
            parts.append(cells[n])
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        metavar="DIR",
        help="a bundle folder (default: the bundle under --models-dir with the lowest dev EER)",
    )
    parser.add_argument("--models-dir", type=Path, default=Path("data/models"), metavar="DIR")
    parser.add_argument(
        "--runtime",
        choices=("auto", "torch", "onnx", "torchscript"),
        default="auto",
        help="torch (the training stack), onnx (ONNX Runtime, no torch needed) or torchscript: the "
        "last two need a folder written by `deepfake-audio export`; auto (default): the export's "
        "format for such a folder, else torch",
    )


def _scoring_flags(parser: argparse.ArgumentParser, *, whole_file: bool = True) -> None:
    if whole_file:
        parser.add_argument(
            "--scope",
            choices=SCOPES,
            default="whole",
            help="whole (default): a file longer than the model's clip is scored whole, in windows, "
            "and --aggregate makes their scores one; first: only its first clip length, as the "
            "pipeline's features stage crops a clip",
        )
        parser.add_argument(
            "--aggregate",
            choices=tuple(AGGREGATES),
            default="mean",
            help="how the windows' scores become the file's (default mean; docs/serving.md says why)",
        )
    parser.add_argument(
        "--window-s",
        type=_positive_float,
        metavar="S",
        help="window length (default: the bundle's clip length, audio.duration_s); a window longer "
        "or shorter than that is cropped or padded to it as in training",
    )
    parser.add_argument(
        "--hop-s", type=_positive_float, metavar="S", help="seconds between window starts (default: the window length)"
    )
    parser.add_argument(
        "--no-vad",
        action="store_true",
        help="skip the voice-activity check (Silero VAD): score windows without speech too",
    )
    parser.add_argument(
        "--min-speech-s",
        type=float,
        default=0.25,
        metavar="S",
        help="seconds of speech a window needs to be scored (default 0.25; at most half the window); "
        "a file with no such window is reported as no_speech",
    )


def _cmd_predict(args: argparse.Namespace) -> int:
    import csv

    try:
        options = _scoring_options(args)
    except ValueError as exc:
        return _usage_error("predict", str(exc))
    paths = expand_paths(args.paths)
    if not paths:
        return _usage_error("predict", f"no audio files found in {' '.join(args.paths)}")
    predictor, problem = _load_predictor(args)
    if predictor is None:
        return _usage_error("predict", problem)
    progress = len(paths) >= PROGRESS_MIN_FILES and sys.stderr.isatty()
    rows = predictor.predict_files(paths, options, batch_size=args.batch_size, progress=progress)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    elif args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in rows:
            low = r.get("min_window")
            writer.writerow({**r, "min_window_start_s": None if low is None else low["start_s"]})
    else:
        print(format_table(rows, colour=_use_colour(sys.stdout)))
    n_failed = sum(r["error"] is not None for r in rows)
    n_silent = sum(r["decision"] == "no_speech" for r in rows)
    log.info("%d files scored, %d without speech, %d failed", len(rows) - n_failed - n_silent, n_silent, n_failed)
    return 1 if n_failed else 0


def _cmd_stream(args: argparse.Namespace) -> int:
    from deepfake_audio.errors import AudioError
    from deepfake_audio.predict import pcm_chunks

    try:
        options = _scoring_options(args)
    except ValueError as exc:
        return _usage_error("stream", str(exc))
    if args.input is not None and not args.input.is_file():
        return _usage_error("stream", f"--input {args.input}: no such file")
    predictor, problem = _load_predictor(args)
    if predictor is None:
        return _usage_error("stream", problem)
    sample_rate = args.sample_rate or predictor.sample_rate
    t0 = time.perf_counter()
    windows, audio_s = 0, 0.0
    source = args.input.open("rb") if args.input is not None else sys.stdin.buffer
    try:
        chunks = pcm_chunks(source, sample_format=args.format, follow=args.input is not None, idle_s=args.idle_s)
        for w in predictor.stream(chunks, sample_rate, options):
            sys.stdout.write(json.dumps(dataclasses.asdict(w)) + "\n")
            sys.stdout.flush()  # a reader sees each window as soon as it is scored
            windows, audio_s = windows + 1, w.end_s
    except AudioError as exc:
        print(f"deepfake-audio stream: {exc.reason}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the usual way to end a live stream
        return 130
    finally:
        if args.input is not None:
            source.close()
    log.info("stream: %d windows over %.1f s of audio in %.1f s", windows, audio_s, time.perf_counter() - t0)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from deepfake_audio.serve import ServeLimits, limit_threads, run_server

    try:
        limits = ServeLimits(
            max_bytes=int(args.max_mb * 1024 * 1024),
            max_duration_s=args.max_duration_s,
            max_in_flight=args.max_in_flight,
            max_batch=args.max_batch,
            batch_wait_ms=args.batch_wait_ms,
        )
    except ValueError as exc:
        return _usage_error("serve", str(exc))
    predictor, problem = _load_predictor(args)
    if predictor is None:
        return _usage_error("serve", problem)
    limit_threads(args.threads)
    return run_server(predictor, host=args.host, port=args.port, limits=limits)


def _cmd_attacks(args: argparse.Namespace) -> int:
    from deepfake_audio.sources import engines

    for e in engines.all_engines():
        status = e.version() if e.available() else f"MISSING: install {e.packages}"
        print(f"{e.attack}  {e.name:<22} {e.kind:<8} {status}")
    return 0


def _cmd_gate(args: argparse.Namespace) -> int:
    from deepfake_audio.gate import run_gate

    return run_gate(args.against, args.targets, args.params)


def _cmd_import(args: argparse.Namespace) -> int:
    from deepfake_audio.importers import import_aasist

    try:
        config = import_aasist(args.path, args.out, dev=args.dev)
    except ValueError as exc:
        return _usage_error("import", str(exc))
    imported = config["imported"]
    dev = f"; dev EER {100 * config['dev_eer']:.2f}% on {args.dev}" if config.get("dev_eer") is not None else ""
    print(f"{args.out}: {imported['variant']} from {args.path} (sha256 {imported['sha256'][:12]}...){dev}")
    return 0


def _cmd_ssl(args: argparse.Namespace) -> int:
    from deepfake_audio.frontends import ssl

    try:
        if args.action == "random":
            out = ssl.save_random(args.out, args.family, seed=args.seed)
            print(f"{out}: a randomly initialised {ssl.FAMILIES[args.family]} of the test size (not trained)")
            return 0
        frontend = ssl.load_frontend(args.checkpoint, layer=None, normalize=None)
    except ValueError as exc:
        return _usage_error("ssl", str(exc))
    about = ssl.describe(frontend)
    print(
        f"{args.checkpoint}: {ssl.resolve_checkpoint(args.checkpoint)}; {ssl.FAMILIES[about['model_type']]}, "
        f"{about['parameters']:,} weights, {about['n_layers']} hidden states of {about['hidden_size']}"
    )
    return 0


def _cmd_scores(args: argparse.Namespace) -> int:
    from deepfake_audio.score_files import ScoreFileError, write_score_file

    try:
        rows = write_score_file(args.scores, args.out, fmt=args.format, split=args.split, score=args.score)
    except ScoreFileError as exc:
        return _usage_error("scores", str(exc))
    n_bona = int((rows["label"] == 1).sum())
    log.info(
        "%s: %d trials (%d bona fide, %d spoof), %s as %s",
        args.out,
        len(rows),
        n_bona,
        len(rows) - n_bona,
        args.score,
        args.format,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deepfake-audio", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "predict",
        help="score audio files (higher = more bona fide)",
        description="Score audio files with a trained bundle: a file longer than the model's clip "
        "is scored whole, in windows, and a file without speech is reported as no_speech. Exit "
        "status: 0 when every file was scored (no_speech included), 1 when some could not be "
        "read (their error column says why), 2 on a usage error.",
    )
    p.add_argument(
        "paths",
        nargs="+",
        help="files or folders (searched recursively), any format soundfile reads, any sample rate, mono or stereo",
    )
    _model_options(p)
    p.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="table (for people), csv (path, score, llr, prob_bonafide, decision, duration_s, error, "
        "speech_s, n_windows, min_window_start_s) or json (those and every window)",
    )
    _scoring_flags(p)
    p.add_argument("--batch-size", type=_positive_int, default=32, help="clips per model call (default 32)")
    p.set_defaults(func=_cmd_predict)
    s = sub.add_parser(
        "stream",
        help="score raw mono PCM from stdin (or a growing file) window by window",
        description="Read raw little-endian mono PCM and print one JSON line per window "
        "({start_s, end_s, score, llr, prob_bonafide, decision, speech}) as soon as the "
        "window's samples have arrived; a window without speech has decision no_speech and no scores.",
    )
    _model_options(s)
    s.add_argument(
        "--sample-rate",
        type=_positive_int,
        metavar="SR",
        help="input sample rate in Hz (default: the bundle's); other rates are resampled with soxr",
    )
    s.add_argument("--format", choices=("s16le", "f32le"), default="s16le", help="sample format (default s16le)")
    _scoring_flags(s, whole_file=False)
    s.add_argument(
        "--input", type=Path, metavar="FILE", help="follow this growing file like `tail -f` instead of reading stdin"
    )
    s.add_argument(
        "--idle-s",
        type=_positive_float,
        default=2.0,
        metavar="S",
        help="with --input: stop when the file has not grown for S seconds (default 2)",
    )
    s.set_defaults(func=_cmd_stream)
    v = sub.add_parser(
        "serve",
        help="score audio over HTTP (POST /v1/score, GET /v1/models, GET /healthz)",
        description="Serve a bundle over HTTP with FastAPI and uvicorn: the model is loaded once, "
        "concurrent requests are scored in shared batches, and every bad request gets a 4xx "
        "JSON error. docs/serving.md has the API.",
    )
    _model_options(v)
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    v.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    v.add_argument("--max-mb", type=_positive_float, default=50.0, metavar="MB", help="largest upload (default 50)")
    v.add_argument(
        "--max-duration-s", type=_positive_float, default=600.0, metavar="S", help="longest audio (default 600)"
    )
    v.add_argument(
        "--max-in-flight",
        type=_positive_int,
        default=16,
        metavar="N",
        help="requests scored at once; more get 503 with Retry-After (default 16)",
    )
    v.add_argument(
        "--max-batch", type=_positive_int, default=32, metavar="N", help="windows per model call (default 32)"
    )
    v.add_argument(
        "--batch-wait-ms",
        type=float,
        default=2.0,
        metavar="MS",
        help="how long a batch waits for more windows once the model is free (default 2)",
    )
    v.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        metavar="N",
        help="threads of each numeric library (torch, onnxruntime, BLAS/OpenMP; default 1): requests "
        "already run in parallel, and more threads per request only contend for the same cores",
    )
    v.set_defaults(func=_cmd_serve)
    from deepfake_audio.export import add_parser as add_export_parser

    add_export_parser(sub)
    a = sub.add_parser("attacks", help="list the demo corpus's attacks and their engines")
    a.set_defaults(func=_cmd_attacks)
    i = sub.add_parser(
        "import",
        help="turn a published checkpoint into a bundle (predict, evaluate and the web page use it)",
        description="Turn a published checkpoint into a bundle. aasist: the AASIST or AASIST-L "
        "state dict of Jung et al. (ICASSP 2022); the variant is read off the weights. The bundle "
        "scores as the authors evaluated: the first 64,600 samples at 16 kHz, repeat-padded.",
    )
    i.add_argument("family", choices=("aasist",), help="the checkpoint's model family")
    i.add_argument("path", type=Path, help="the checkpoint file (e.g. AASIST.pth)")
    i.add_argument("--out", type=Path, required=True, help="the bundle folder to write")
    i.add_argument(
        "--dev",
        type=Path,
        metavar="CSV",
        help="labelled clips (path,label; paths relative to the CSV) to fit the decision threshold "
        "and score calibration on (default: threshold 0 on the bona fide logit, no calibration)",
    )
    i.set_defaults(func=_cmd_import)
    ss = sub.add_parser(
        "ssl",
        help="check a self-supervised checkpoint loads offline, or save a random one of the test size",
        description="check CHECKPOINT: resolve and load ssl.checkpoint (a folder, or a hub id in the "
        "local Hugging Face cache) as the pipeline would. random --family F --out DIR: save a randomly "
        "initialised model of a tiny size (tests, CI, trying the pipeline offline).",
    )
    ss_sub = ss.add_subparsers(dest="action", required=True)
    sc = ss_sub.add_parser("check", help="load a checkpoint as the pipeline would")
    sc.add_argument("checkpoint", help="a folder or a hub id")
    sr = ss_sub.add_parser("random", help="save a random tiny model of a family")
    sr.add_argument("--family", choices=("wav2vec2", "wavlm", "hubert"), default="wav2vec2")
    sr.add_argument("--out", type=Path, required=True)
    sr.add_argument("--seed", type=int, default=0)
    ss.set_defaults(func=_cmd_ssl)
    sc = sub.add_parser(
        "scores",
        help="write a split of a scores file in the format an official ASVspoof evaluation package reads",
        description="Write one split of a scores file that the pipeline wrote (Parquet: utt_id, split, "
        "label, source, score, llr, ...) as a score file. asvspoof5 (alias asvspoof): a TSV "
        "with the header 'filename<TAB>cm-score', as the ASVspoof 5 evaluation package reads it; "
        "asvspoof2021: '<trial id> <score>' lines, as the ASVspoof 2021 LA/DF evaluate.py read them; "
        "csv: utt_id,score,label. The trial id is utt_id without its '<source>/' prefix (folders "
        "after it are kept). Exit status 2 when the file cannot be written (the message says why).",
    )
    sc.add_argument("scores", type=Path, metavar="SCORES.parquet", help="a scores file the pipeline wrote")
    sc.add_argument("--format", required=True, choices=("asvspoof5", "asvspoof", "asvspoof2021", "csv"))
    sc.add_argument(
        "--split",
        metavar="S",
        help="the split to write, as stored (eval:NAME) or as its metrics block is named (NAME); "
        "needed when the file holds several",
    )
    sc.add_argument(
        "--score",
        choices=("score", "llr"),
        default="score",
        help="the raw score (default) or the calibrated log-likelihood ratio (for actDCF and Cllr)",
    )
    sc.add_argument("--out", type=Path, required=True, metavar="FILE", help="the score file to write")
    sc.set_defaults(func=_cmd_scores)
    g = sub.add_parser("gate", help="exit 1 when a metric got worse than at a git revision (params.yaml: gate)")
    g.add_argument("--against", default="HEAD", metavar="REV", help="git revision to compare with (default: HEAD)")
    g.add_argument("--targets", nargs="+", metavar="PATH", help="metrics files (default: gate.targets, else all)")
    g.add_argument("--params", type=Path, default=Path("params.yaml"), help="holds the gate section")
    g.set_defaults(func=_cmd_gate)
    args = parser.parse_args(argv)
    setup_logging(logging.WARNING)
    if args.command in (
        "predict",
        "stream",
        "import",
        "scores",
        "serve",
        "export",
    ):  # which model, and the summary line, on stderr
        log.setLevel(logging.INFO)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
