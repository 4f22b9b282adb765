"""benchmarks/train_waveform.py: the real waveform training path runs end to end and reports its figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from benchmarks import train_waveform  # noqa: E402


def test_it_trains_rawnet2_with_augmentation_off_and_on_and_writes_the_figures(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    argv = ["--kinds", "rawnet2", "--n-samples", "16000", "--clips", "24", "--clip-s", "1", "--train-clips", "16"]
    argv += ["--dev-clips", "8", "--batch-size", "8", "--num-workers", "0", "--tmp", str(tmp_path), "--json", str(out)]
    assert train_waveform.main(argv) == 0
    rows = json.loads(out.read_text())["results"]
    assert [(r["kind"], r["augment"], r["n_samples"], r["steps"]) for r in rows] == [
        ("rawnet2", "off", 16000, 2),
        ("rawnet2", "on", 16000, 2),
    ]
    assert all(r["train_samples_per_s"] > 0 and 0 <= r["data_wait_share"] <= 1 for r in rows)
    assert capsys.readouterr().out.count("| rawnet2 | default |") == 2
    store = tmp_path / "deepfake-audio-bench-train-waveform" / "store-24x1s"
    assert json.loads((store / "meta.json").read_text())["n_clips"] == 24
    mtime = (store / "meta.json").stat().st_mtime_ns
    assert train_waveform.main([*argv, "--augment", "off"]) == 0  # the store is reused, not rewritten
    assert (store / "meta.json").stat().st_mtime_ns == mtime


def test_train_and_dev_clips_must_fit_in_the_store() -> None:
    with pytest.raises(SystemExit):
        train_waveform.main(["--clips", "10", "--train-clips", "8", "--dev-clips", "4"])
