"""``deepfake-audio serve``: a bundle behind an HTTP API (FastAPI, run by uvicorn).

Endpoints (docs/serving.md has examples):

- ``POST /v1/score``: one clip, as a multipart upload in the field ``file`` (WAV, FLAC, OGG or
  MP3), or as raw little-endian mono PCM in the body (``Content-Type: audio/pcm`` or
  ``application/octet-stream``) with ``?sample_rate=HZ`` and ``&format=s16le|f32le``. Query
  options: ``scope``, ``aggregate``, ``window_s``, ``hop_s``, ``vad``, ``min_speech_s`` (as
  ``deepfake-audio predict`` takes them). The answer is the row ``predict --format json`` prints
  (:func:`deepfake_audio.predict.result_row`: ``score``, ``llr``, ``prob_bonafide``,
  ``decision``, ``duration_s``, ``error``, the windows) plus ``model``.
- ``GET /v1/models``: the model served, its clip length, rate, threshold, calibration, runtime and
  its model card (:mod:`deepfake_audio.model_card`).
- ``GET /healthz``: liveness and load.

The model is loaded once. Each request decodes, checks and makes its model inputs in a worker
thread (:meth:`Predictor.prepare`: the speech check and features), then hands them to one
:class:`Batcher` thread that runs the model on the windows of every request waiting, up to
``max_batch`` at a time, so concurrent requests share model calls.

Every fault of a request is a 4xx JSON answer ``{"error": {"reason": ..., "message": ...}}``:
400 a malformed request, 413 too large or too long, 415 an unknown content type, 422 audio the
pipeline rejects (empty, corrupt, silent, too short, non-finite) or bad options, 503 (with
``Retry-After``) when ``max_in_flight`` requests are already being scored. A clip without speech
is not an error: its ``decision`` is ``no_speech``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import Request  # at module level: FastAPI resolves the endpoints' annotations here

from deepfake_audio.errors import AudioError
from deepfake_audio.predict import PCM_FORMATS, ScoringOptions, result_row

if TYPE_CHECKING:
    from fastapi import FastAPI

    from deepfake_audio.predict import Predictor

log = logging.getLogger(__name__)

__all__ = ["Batcher", "ServeLimits", "create_app", "run_server"]

PCM_TYPES = ("audio/pcm", "application/octet-stream", "audio/l16")
"""Content types read as raw PCM (the body is the samples)."""


@dataclasses.dataclass(frozen=True)
class ServeLimits:
    """What one server accepts.

    Attributes:
        max_bytes: the largest request body.
        max_duration_s: the longest audio, in seconds (checked on the header before decoding).
        max_in_flight: requests being scored at once; one more gets 503.
        max_batch: windows per model call.
        batch_wait_ms: how long the batcher waits for more windows before running a batch that is
            not full (the model is free meanwhile, so this is added latency only when idle).
    """

    max_bytes: int = 50 * 1024 * 1024
    max_duration_s: float = 600.0
    max_in_flight: int = 16
    max_batch: int = 32
    batch_wait_ms: float = 2.0

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_in_flight", "max_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if not self.max_duration_s > 0:
            raise ValueError(f"max_duration_s={self.max_duration_s} must be positive")
        if not 0 <= self.batch_wait_ms <= 1000:
            raise ValueError(f"batch_wait_ms={self.batch_wait_ms} must be in [0, 1000]")


class RequestError(Exception):
    """A request's fault: answered with ``status`` and ``{"error": {"reason", "message"}}``."""

    def __init__(self, status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


@dataclasses.dataclass
class _Job:
    inputs: list[np.ndarray]
    future: concurrent.futures.Future


class Batcher:
    """One thread that runs the model on the inputs of every waiting request at once.

    :meth:`submit` queues a request's inputs and returns a future of their scores. The thread
    takes the first job waiting, then whatever else arrives within ``wait_s`` while the batch
    holds fewer than ``max_batch`` inputs, runs ``run`` on batches of at most ``max_batch`` and
    hands each job its scores. A failing batch fails its jobs' futures; the thread goes on.
    """

    def __init__(self, run: Callable[[list[np.ndarray]], np.ndarray], *, max_batch: int, wait_s: float) -> None:
        self._run = run
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self.n_batches = 0
        self.n_inputs = 0
        self._thread = threading.Thread(target=self._loop, name="deepfake-audio-batcher", daemon=True)
        self._thread.start()

    def submit(self, inputs: list[np.ndarray]) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        if not inputs:
            future.set_result(np.zeros(0, dtype=np.float64))
        else:
            self._queue.put(_Job(inputs, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _take(self) -> list[_Job] | None:
        first = self._queue.get()
        if first is None:
            return None
        jobs, n = [first], len(first.inputs)
        deadline = time.monotonic() + self.wait_s
        while n < self.max_batch:
            try:
                job = (
                    self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
                    if self.wait_s
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # close after this batch
                break
            jobs.append(job)
            n += len(job.inputs)
        return jobs

    def _loop(self) -> None:
        while (jobs := self._take()) is not None:
            inputs = [x for job in jobs for x in job.inputs]
            try:
                scores = np.concatenate(
                    [self._run(inputs[i : i + self.max_batch]) for i in range(0, len(inputs), self.max_batch)]
                )
                self.n_batches += -(-len(inputs) // self.max_batch)
                self.n_inputs += len(inputs)
            except Exception as exc:  # noqa: BLE001 - the requests fail, the server goes on
                log.exception("scoring a batch of %d inputs failed", len(inputs))
                for job in jobs:
                    job.future.set_exception(exc)
                continue
            start = 0
            for job in jobs:
                job.future.set_result(scores[start : start + len(job.inputs)])
                start += len(job.inputs)


def _options(query: dict[str, str]) -> ScoringOptions:
    def number(name: str) -> float | None:
        if name not in query:
            return None
        try:
            return float(query[name])
        except ValueError:
            raise RequestError(422, "bad_option", f"{name}={query[name]!r} is not a number") from None

    vad = query.get("vad", "true").lower()
    if vad not in ("true", "false", "1", "0"):
        raise RequestError(422, "bad_option", f"vad={query['vad']!r}: use true or false")
    min_speech_s = number("min_speech_s")
    try:
        return ScoringOptions(
            scope=query.get("scope", "whole"),
            aggregate=query.get("aggregate", "mean"),
            window_s=number("window_s"),
            hop_s=number("hop_s"),
            vad=vad in ("true", "1"),
            **({} if min_speech_s is None else {"min_speech_s": min_speech_s}),
        )
    except ValueError as exc:
        raise RequestError(422, "bad_option", str(exc)) from None


def _decode_pcm(body: bytes, query: dict[str, str], limits: ServeLimits) -> tuple[np.ndarray, int]:
    if "sample_rate" not in query:
        raise RequestError(400, "no_sample_rate", "raw PCM needs ?sample_rate=HZ (and &format=s16le|f32le)")
    try:
        sample_rate = int(query["sample_rate"])
    except ValueError:
        raise RequestError(422, "bad_option", f"sample_rate={query['sample_rate']!r} is not a whole number") from None
    if not 1000 <= sample_rate <= 384000:
        raise RequestError(422, "bad_option", f"sample_rate={sample_rate} is outside 1000-384000 Hz")
    fmt = query.get("format", "s16le")
    if fmt not in PCM_FORMATS:
        raise RequestError(422, "bad_option", f"format={fmt!r}; known: {', '.join(PCM_FORMATS)}")
    dtype, scale = PCM_FORMATS[fmt]
    width = np.dtype(dtype).itemsize
    if len(body) % width:
        raise RequestError(422, "corrupt", f"{len(body)} bytes is not a whole number of {width}-byte {fmt} samples")
    if len(body) // width > limits.max_duration_s * sample_rate:
        raise RequestError(
            413,
            "too_long",
            f"{len(body) // width / sample_rate:.0f} s of audio; the limit is {limits.max_duration_s:g} s",
        )
    y = np.frombuffer(body, dtype=dtype).astype(np.float32) * np.float32(scale)
    return y, sample_rate


async def _read_body(request: Any, limits: ServeLimits) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limits.max_bytes:
                raise RequestError(
                    413, "too_large", f"the body is {int(declared)} bytes; the limit is {limits.max_bytes}"
                )
        except ValueError:
            raise RequestError(400, "bad_request", f"Content-Length {declared!r} is not a number") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_bytes:
            raise RequestError(413, "too_large", f"the body is over the limit of {limits.max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _upload(request: Any, body: bytes) -> tuple[str, bytes]:
    """The file of a multipart body's ``file`` field: (filename, bytes)."""
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream() -> AsyncIterator[bytes]:
        yield body

    try:
        form = await MultiPartParser(request.headers, stream(), max_files=1, max_fields=20).parse()
    except MultiPartException as exc:
        raise RequestError(400, "bad_multipart", f"the multipart body could not be read: {exc.message}") from None
    try:
        item = form.get("file")
        if not isinstance(item, UploadFile):
            raise RequestError(400, "no_file", "a multipart request needs the audio in the field 'file'")
        data = await item.read()
        return item.filename or "upload", data
    finally:
        await form.close()


def _error(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"reason": reason, "message": message}}, status_code=status, headers=headers)


def model_info(predictor: Predictor) -> dict:
    """What ``GET /v1/models`` says of the model: kind, input, audio contract, threshold,
    calibration, dev EER, runtime and its model card (markdown and structured, ``None`` without one)."""
    from deepfake_audio.model_card import find_card, load_card_json

    config = predictor.config
    card = find_card(predictor.bundle_dir)
    exported = config.get("exported")
    return {
        "name": predictor.bundle_dir.name,
        "model": predictor.model_name,
        "input": predictor.bundle.input,
        "runtime": exported["format"] if exported else "torch",
        "sample_rate": predictor.sample_rate,
        "window_s": predictor.window_s,
        "threshold": predictor.threshold,
        "dev_eer": config.get("dev_eer"),
        "calibration": config.get("calibration"),
        "card": card.read_text(encoding="utf-8") if card is not None else None,
        "card_json": load_card_json(predictor.bundle_dir),
    }


def create_app(predictor: Predictor, limits: ServeLimits | None = None) -> FastAPI:
    """The FastAPI app serving ``predictor`` (one model, loaded once) within ``limits``."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from deepfake_audio.webapp import UploadError, decode_upload

    limits = limits or ServeLimits()
    info = model_info(predictor)
    state = {"in_flight": 0, "requests": 0, "started": time.time()}
    lock = threading.Lock()
    batcher: Batcher | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal batcher
        batcher = Batcher(
            lambda xs: predictor.run(xs, batch_size=limits.max_batch),
            max_batch=limits.max_batch,
            wait_s=limits.batch_wait_ms / 1000,
        )
        try:
            yield
        finally:
            batcher.close()

    app = FastAPI(title="deepfake-audio", version="1", lifespan=lifespan)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> Any:
        return _error(exc.status, exc.reason, str(exc), exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        reasons = {404: "not_found", 405: "method_not_allowed"}
        return _error(exc.status_code, reasons.get(exc.status_code, "http_error"), str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Any:
        return _error(422, "bad_request", str(exc.errors()))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Any:  # a bug: logged, answered as JSON
        log.exception("internal error on %s", request.url.path)
        return _error(500, "internal", f"{type(exc).__name__}: {exc}")

    @app.get("/healthz")
    async def healthz() -> dict:
        return {
            "status": "ok",
            "model": info["name"],
            "in_flight": state["in_flight"],
            "requests": state["requests"],
            "batches": batcher.n_batches if batcher else 0,
            "uptime_s": round(time.time() - state["started"], 3),
        }

    @app.get("/v1/models")
    async def models() -> dict:
        return {"models": [info]}

    def score(y: np.ndarray, sample_rate: int, options: ScoringOptions) -> Any:
        """Check and prepare in a worker thread; returns the prepared signal."""
        return predictor.prepare(predictor.check_signal(y, sample_rate), options)

    @app.post("/v1/score")
    async def score_endpoint(request: Request) -> dict:
        query = dict(request.query_params)
        options = _options(query)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not (content_type == "multipart/form-data" or content_type in PCM_TYPES):
            raise RequestError(
                415,
                "unsupported_type",
                f"Content-Type {content_type or '(none)'!r}: send multipart/form-data with the field "
                "'file', or raw PCM as audio/pcm with ?sample_rate=HZ",
            )
        with lock:
            if state["in_flight"] >= limits.max_in_flight:
                raise RequestError(
                    503, "busy", f"{limits.max_in_flight} requests are being scored; retry", {"Retry-After": "1"}
                )
            state["in_flight"] += 1
            state["requests"] += 1
        try:
            body = await _read_body(request, limits)
            if not body:
                raise RequestError(400, "empty", "the request has no body")
            try:
                if content_type == "multipart/form-data":
                    filename, data = await _upload(request, body)
                    y, sr = await run_in_threadpool(
                        decode_upload,
                        data,
                        filename,
                        min_duration_s=predictor.audio.min_duration_s,
                        max_bytes=limits.max_bytes,
                        max_duration_s=limits.max_duration_s,
                    )
                else:
                    y, sr = _decode_pcm(body, query, limits)
                prepared = await run_in_threadpool(score, y, sr, options)
            except UploadError as exc:
                status = {"too_large": 413, "too_long": 413, "type": 415}.get(exc.reason, 422)
                raise RequestError(status, exc.reason, str(exc)) from None
            except AudioError as exc:
                raise RequestError(422, exc.reason, str(exc)) from None
            scores = await asyncio.wrap_future(batcher.submit(prepared.inputs))
            return {"model": info["name"], **result_row(predictor.finish(prepared, scores))}
        finally:
            with lock:
                state["in_flight"] -= 1

    return app


def limit_threads(n: int) -> None:
    """Cap the threads of BLAS, OpenMP and torch (when imported) in this process at ``n``; call it
    once the model is loaded, so that the libraries it loaded are capped too.

    The server scores several requests at once (worker threads and the batcher): a numeric
    library that also spreads one call over every core makes them contend, and its waiting
    threads spin. docs/serving.md has the load test that set the default of 1.
    """
    import sys

    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)
    if "torch" in sys.modules:  # an ONNX export serves without torch: never import it here
        sys.modules["torch"].set_num_threads(n)


def run_server(
    predictor: Predictor, *, host: str = "127.0.0.1", port: int = 8000, limits: ServeLimits | None = None
) -> int:
    """Serve until interrupted; returns the exit status."""
    import uvicorn

    app = create_app(predictor, limits)
    log.info(
        "serving %s on http://%s:%d (POST /v1/score, GET /v1/models, GET /healthz)", predictor.bundle_dir, host, port
    )
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
    return 0
