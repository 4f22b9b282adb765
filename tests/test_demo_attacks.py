"""benchmarks/demo_attacks.py: its variants are valid params, and its table reads what the runs wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmarks.demo_attacks import NEW_ATTACKS, VARIANTS, stage_times, table
from deepfake_audio.params import params_from_dict
from deepfake_audio.sources import parse_spec
from tools.ci_profile import merge

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_is_valid_params(name: str) -> None:
    base = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params = params_from_dict(merge(base, VARIANTS[name]))
    kind, demo = parse_spec(params.data.sources[0], key="data.sources[0]")
    assert kind.name == "demo"
    if name == "before":
        assert set(demo.exclude_attacks) == set(NEW_ATTACKS)
        assert demo.exclude_bonafide == ("asterisk-core-sounds",)
    if name in ("after", "unseen"):
        assert not demo.exclude_attacks and not demo.exclude_bonafide
    if name == "unseen":
        assert params.split.strategy == "unseen_attacks" and set(params.split.unseen_attacks) == set(NEW_ATTACKS)


def _result(variant: str, test_eer: float, bench: dict[str, float], per_attack: dict[str, float]) -> dict:
    model = {"test_eer": test_eer, "test_per_attack_eer": per_attack, "bench_eer": 0.4, "bench_per_corpus": bench}
    return {
        "variant": variant,
        "repro_s": 612.4,
        "stage_s": {"download": 301.2},
        "clips": {"train": {"bonafide": 10, "spoof": 20}, "dev": {"bonafide": 3, "spoof": 6}, "test": {"spoof": 4}},
        "models": {"xgboost": model},
    }


def test_table_rows_columns_and_held_out_attacks() -> None:
    text = table(
        [
            _result("before", 0.25, {"tts_a": 0.5}, {"A01": 0.1}),
            _result("unseen", 0.3, {"tts_a": 0.45, "vc_b": 0.2}, {"A01": 0.1, "A03": 0.3, "A10": 0.6, "A12": 0.45}),
        ]
    )
    lines = text.splitlines()
    assert "| variant | model | demo test EER | bench EER | tts_a | vc_b |" in lines
    assert "| before | xgboost | 25.0 | 40.0 | 50.0 | - |" in lines  # a corpus a run lacks is "-", not 0
    assert "| unseen | xgboost | 30.0 | 40.0 | 45.0 | 20.0 |" in lines
    # A11 was not scored: "-"; seen attacks are averaged without the held-out ones.
    assert "| xgboost | 60.0 | - | 45.0 | 20.0 |" in lines
    assert any(line.startswith("| before | A01-A09") and "| 30 / 9 / 4 | 612 | 301 |" in line for line in lines)


def test_stage_times_sum_the_stages_of_one_name(tmp_path: Path) -> None:
    log = tmp_path / "repro.log"
    log.write_text(
        "Running stage 'download':\n"
        "14:49:49 INFO stages.download: download done in 321.9 s: 2127 clips\n"
        "14:51:44 INFO stages.train: train done in 43.9 s: cnn_lstm on cpu\n"
        "14:52:43 INFO stages.train: train done in 54.1 s: cnn on cpu\n"
        "a line that says done in nothing\n",
        encoding="utf-8",
    )
    assert stage_times(log) == {"download": 321.9, "train": 98.0}
