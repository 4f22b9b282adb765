"""The web page in a real browser: Debian's chromium, headless, driven by Playwright.

Playwright downloads nothing here: it launches the system browser (``executable_path``). The
Streamlit server runs as a subprocess on a free localhost port, reading tiny test bundles
(tests/bundles.py) through ``DEEPFAKE_AUDIO_MODELS_DIR``. ``make apt`` installs chromium, so in
CI these tests run; they skip only where no chromium is installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from deepfake_audio import webapp
from deepfake_audio.predict import Predictor, best_bundle
from tests.bundles import session_bundles
from tests.test_app import make_app_flags

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app" / "streamlit_app.py"


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


CHROMIUM = find_chromium()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (`make apt` installs Debian's)"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log_path: Path, *, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.read().strip() == b"ok":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet
        time.sleep(0.25)
    pytest.fail(f"streamlit not healthy after {timeout_s} s:\n{log_path.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return session_bundles(tmp_path_factory)["xgboost"].parent


@pytest.fixture(scope="module")
def server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The page served by ``streamlit run`` with `make app`'s flags, on a free localhost port."""
    work = tmp_path_factory.mktemp("app_server")
    metrics = work / "metrics"
    metrics.mkdir()
    (metrics / "xgboost.json").write_text(json.dumps({"test": {"eer": 0.125}}), encoding="utf-8")
    port = free_port()
    env = {
        **os.environ,
        webapp.MODELS_DIR_ENV: str(models_dir),
        webapp.METRICS_DIR_ENV: str(metrics),
        "HOME": str(work),
    }  # streamlit's ~/.streamlit stays inside the test's folder
    log_path = work / "streamlit.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(APP),
                *make_app_flags(),
                "--server.port",
                str(port),
                "--server.headless",
                "true",
                "--server.fileWatcherType",
                "none",
            ],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://localhost:{port}"
    try:
        wait_healthy(url, proc, log_path)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


def open_page(browser, url: str):
    # Tall enough that the whole result (three figures) fits: Streamlit scrolls inside its own
    # container, which a full-page screenshot does not unroll.
    page = browser.new_page(viewport={"width": 1280, "height": 2000})
    page.set_default_timeout(120_000)  # the first analysis in a fresh server imports torch and librosa
    page.goto(url)
    page.get_by_role("heading", name="Spoofed speech detector").wait_for()
    return page


def test_upload_shows_the_decision_in_a_real_browser(
    server: str, browser, models_dir: Path, make_wav, tmp_path: Path
) -> None:
    clip = make_wav(kind="speech", duration_s=3.0, seed=11, name="speech.wav")
    expected = webapp.analyse_file(clip, Predictor.load(best_bundle(models_dir)))
    page = open_page(browser, server)
    best = best_bundle(models_dir).name  # the default model
    page.get_by_text("Test EER: 12.5%" if best == "xgboost" else "Test EER: no test metrics").wait_for()

    page.locator("input[type='file']").set_input_files(str(clip))
    decision = page.get_by_text(re.compile(r"^Decision: (bona fide|spoof)$"))
    decision.wait_for()
    assert decision.inner_text() == f"Decision: {expected.decision_label}"
    page.get_by_role("heading", name="Score over time").wait_for()
    images = page.locator("[data-testid='stImage'] img, [data-testid='stImageContainer'] img")
    page.wait_for_function(
        "n => document.querySelectorAll('img').length >= n && "
        "[...document.querySelectorAll('img')].every(i => i.complete)",
        arg=3,
    )
    assert images.count() >= 3  # waveform, log-mel spectrogram, score timeline
    assert page.get_by_text(f"{expected.prob_bonafide:.1%}", exact=True).count() == 1

    shot = tmp_path / "app.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
    page.close()


def test_a_wrong_file_type_is_refused_in_the_browser(server: str, browser, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio\n", encoding="utf-8")
    page = open_page(browser, server)
    page.locator("input[type='file']").set_input_files(str(notes))
    alert = page.get_by_role("alert").filter(has_text="notes.txt")
    alert.wait_for(timeout=30_000)
    assert alert.inner_text().strip() == "'notes.txt' is a .txt file: upload a WAV, FLAC, OGG or MP3 file."
    assert page.get_by_text(re.compile(r"^Decision:")).count() == 0
    page.screenshot(path=str(tmp_path / "wrong_type.png"), full_page=True)
    page.close()
