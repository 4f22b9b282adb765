"""Model cards (deepfake_audio/model_card.py, stages/card.py): built from the pipeline's own outputs.

Unit tests build cards from a small hand-made config, metrics and manifest whose counts are known;
the end-to-end test runs the ``card`` stage on tiny real bundles (tests/bundles.py) with metrics
written by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from deepfake_audio.model_card import (
    CARD_JSON,
    CARD_MARKDOWN,
    build_card,
    find_card,
    load_card_json,
    pct,
    render_markdown,
    write_card,
)
from deepfake_audio.params import params_from_dict
from tests.bundles import session_bundles

ROOT = Path(__file__).resolve().parents[1]

# (split, label, attack, engine, speaker prefix, n clips)
ROWS = [
    ("train", "bonafide", "-", "", "tb", 6),
    ("train", "spoof", "A01", "espeak-ng", "ts", 4),
    ("train", "spoof", "A02", "flite", "ts", 3),
    ("dev", "bonafide", "-", "", "db", 2),
    ("dev", "spoof", "A01", "espeak-ng", "ds", 1),
    ("dev", "spoof", "A02", "flite", "ds", 1),
    ("test", "bonafide", "-", "", "sb", 3),
    ("test", "spoof", "A01", "espeak-ng", "ss", 2),
    ("test", "spoof", "A02", "flite", "ss", 1),
    ("test", "spoof", "A03", "griffin-lim", "ss", 2),  # never in train: an unseen attack
]


def make_manifest() -> pd.DataFrame:
    rows = []
    for split, label, attack, engine, speaker, n in ROWS:
        for i in range(n):
            rows.append(
                {
                    "utt_id": f"src/{split}_{attack}_{i}",
                    "split": split,
                    "label": label,
                    "attack": attack,
                    "engine": engine,
                    "source": "src",
                    "speaker": f"{speaker}{i % 2}",
                    "sample_rate": 16000,
                    "duration_s": 1.0 + i,
                    "language": "en",
                }
            )
    return pd.DataFrame(rows)


def make_config(*, calibration: bool = True) -> dict:
    config = {
        "schema_version": 1,
        "model": "cnn",
        "input": "frames",
        "params_section": "model",
        "hyper_parameters": {"conv_channels": 8, "lstm_units": 8, "dropout": 0.3},
        "train": {
            "epochs": 30,
            "batch_size": 32,
            "lr": 0.001,
            "weight_decay": 0.0001,
            "lr_schedule": "plateau",
            "patience": 6,
            "grad_clip": 5.0,
            "loss": "cross_entropy",
            "balance": "weights",
            "seed": 7,
            "device": "auto",
            "init_from": None,
            "augment": {"prob": 0.0, "max_ops": 2, "ops": ["rawboost"]},
            "spec_augment": {"time_masks": 0, "max_time_frames": 20, "feature_masks": 0, "max_feature_rows": 8},
        },
        "audio": {"sample_rate": 16000, "duration_s": 4.0, "pad": "repeat", "crop": "start", "min_duration_s": 0.1},
        "n_samples": 64000,
        "features": {"n_fft": 512, "hop_length": 256, "n_mels": 128, "augment": {"copies": 0, "ops": []}},
        "scaler": {},
        "threshold": -0.25,
        "dev_eer": 0.04,
        "summary": {"best_epoch": 5, "epochs_run": 12, "device": "cpu", "dev_eer": 0.04, "threshold": -0.25},
        "training_key": "0123456789abcdef",
    }
    if calibration:
        config["calibration"] = {"slope": 0.5, "offset": 0.1, "fitted_on": "dev"}
    return config


def make_metrics(*, eval_set: bool = True, ci: bool = True) -> dict:
    test = {
        "eer": 0.05,
        "min_dcf": 0.12,
        "act_dcf": 0.15,
        "cllr": 0.3,
        "accuracy": 0.95,
        "roc_auc": 0.99,
        "n_bonafide": 3,
        "n_spoof": 5,
        "per_attack_eer": {"A01": 0.01, "A02": 0.04, "A03": 0.31},
    }
    bench = {
        "eer": 0.3712,
        "min_dcf": 0.8,
        "act_dcf": 0.95,
        "cllr": 1.1,
        "accuracy": 0.6,
        "roc_auc": 0.7,
        "n_bonafide": 40,
        "n_spoof": 60,
        "per_attack_eer": {"tts_x": 0.5, "vc_y": 0.1},
    }
    if ci:
        test.update(eer_ci=[0.02, 0.09], eer_ci_level=0.95)
        bench.update(eer_ci=[0.33, 0.41], eer_ci_level=0.95)
    return {"test": test, "bench": bench} if eval_set else {"test": test}


def make_params(*, eval_set: bool = True):
    return params_from_dict(
        {
            "data": {
                "sources": [{"kind": "manifest", "path": "corpus/labels.csv"}],
                "eval_sets": {"bench": {"kind": "manifest", "path": "../bench/labels.csv"}} if eval_set else {},
            },
            "split": {"strategy": "stratified_group", "seed": 3},
        }
    )


def card_for(*, eval_set: bool = True, ci: bool = True, calibration: bool = True) -> dict:
    return build_card(
        make_config(calibration=calibration),
        make_metrics(eval_set=eval_set, ci=ci),
        make_manifest(),
        make_params(eval_set=eval_set),
        name="cnn",
        commit="abc123",
    )


def test_counts_per_split_class_attack_and_source() -> None:
    card = card_for()
    counts = card["data"]["counts"]
    assert list(counts) == ["train", "dev", "test"]
    assert counts["train"]["n_clips"] == 13
    assert (counts["train"]["n_bonafide"], counts["train"]["n_spoof"]) == (6, 7)
    assert counts["train"]["attacks"] == {"A01": 4, "A02": 3}
    assert counts["test"]["attacks"] == {"A01": 2, "A02": 1, "A03": 2}
    assert counts["test"]["sources"] == {"src": {"bonafide": 3, "spoof": 5}}
    assert counts["dev"]["n_speakers"] == 3  # db0, db1, ds0
    attacks = card["data"]["attacks"]
    assert attacks["-"]["clips"] == {"train": 6, "dev": 2, "test": 3}
    assert attacks["A03"] == {"clips": {"train": 0, "dev": 0, "test": 2}, "engines": ["griffin-lim"]}
    assert card["data"]["speakers_shared"] == {"train_test": 0, "train_dev": 0, "dev_test": 0}
    markdown = render_markdown(card)
    assert "| bona fide | - | 6 | 2 | 3 | 11 |" in markdown
    assert "| `A01` | espeak-ng | 4 | 1 | 2 | 7 |" in markdown
    assert "| train | 13 | 6 | 7 | 4 | 2 |" in markdown  # clips, bona fide, spoof, speakers, attacks
    assert "| `src` | 6 / 7 | 2 / 2 | 3 / 5 |" in markdown
    assert "kind `manifest`" in markdown and "corpus/labels.csv" in markdown
    assert "strategy `stratified_group`" in markdown and "seed 3" in markdown


def test_metrics_are_percentages_with_intervals_and_weaknesses_are_flagged() -> None:
    card = card_for()
    markdown = render_markdown(card)
    assert "| test | 3 | 5 | 5.00% | 2.00–9.00% | 0.1200 | 0.1500 | 0.3000 | 95.00% | 0.9900 |" in markdown
    assert "| bench | 40 | 60 | 37.12% | 33.00–41.00% |" in markdown
    # A03 (31%) is weak on test, A01 (1%) is not; the eval set itself is weak (37%)
    weak = {(w["set"], w["attack"]) for w in card["weaknesses"]}
    assert ("test", "A03") in weak and ("test", "A01") not in weak
    assert ("bench", None) in weak and ("bench", "tts_x") in weak and ("bench", "vc_y") not in weak
    assert "| `A03` | griffin-lim | 0 | 2 | 31.00% | weak; unseen in training |" in markdown
    assert "attack `A03` (griffin-lim) on test: EER 31.00%" in markdown
    assert any("A03" in s and "none in train" in s for s in card["limitations"])
    assert pct(0.22826) == "22.83%" and pct(None) == "n/a"


def test_the_cross_corpus_limit_names_the_eval_set_and_its_eer() -> None:
    card = card_for()
    sentence = (
        "On bench (speech it was never trained on) its EER is 37.12% (95% CI 33.00–41.00%), "
        "against 5.00% in-domain test: do not rely on it for audio like bench's"
    )
    assert any(s.startswith(sentence) for s in card["limitations"])
    assert sentence in render_markdown(card)
    assert not any("No cross-corpus figure" in s for s in card["limitations"])


def test_without_eval_sets_the_card_says_no_cross_corpus_figure_exists() -> None:
    card = card_for(eval_set=False)
    assert card["eval_sets"] == {}
    assert list(card["metrics"]) == ["test"]
    limit = next(s for s in card["limitations"] if "No cross-corpus figure exists" in s)
    assert "5.00% (95% CI 2.00–9.00%) overstates" in limit
    markdown = render_markdown(card)
    assert "No cross-corpus figure exists" in markdown
    assert "**No eval set**" in markdown


def test_without_calibration_or_interval() -> None:
    card = card_for(calibration=False, ci=False)
    assert card["calibration"]["calibrated"] is False and card["calibration"]["slope"] is None
    markdown = render_markdown(card)
    assert "this bundle has no `calibration`" in markdown
    assert any("`llr` and `prob_bonafide` are null" in s for s in card["limitations"])
    assert any("No bootstrap interval" in s for s in card["limitations"])
    assert "| test | 3 | 5 | 5.00% | n/a |" in markdown
    # with no interval the cross-corpus sentence still names the set and its EER
    assert any(
        s.startswith("On bench (speech it was never trained on) its EER is 37.12%, against 5.00%")
        for s in card["limitations"]
    )


def test_calibration_threshold_and_model_details() -> None:
    card = card_for()
    markdown = render_markdown(card)
    assert "`llr = 0.500000 * score + 0.100000`" in markdown and "fitted on dev" in markdown
    assert "`score` >= -0.250000" in markdown and "dev EER 4.00%" in markdown
    for output in ("`score`", "`llr`", "`prob_bonafide`", "`decision`"):
        assert f"- {output}: " in markdown
    assert "| epochs run | 12 |" in markdown and "| seed | 7 |" in markdown
    assert "| `lstm_units` | 8 |" in markdown
    assert "It hears 4 s of audio (64000 samples at 16000 Hz)" in markdown
    assert "not a speaker-verification system" in markdown
    assert "deepfake-audio predict --model data/models/cnn" in markdown
    assert "deepfake-audio serve --model data/models/cnn" in markdown
    assert "`abc123`" in markdown and "`0123456789abcdef`" in markdown
    for section in (
        "## Model details",
        "## Intended use",
        "## Training data",
        "## Evaluation data",
        "## Metrics",
        "## Quantitative analyses",
        "## Calibration",
        "## Limitations and ethical considerations",
        "## How to use",
    ):
        assert f"\n{section}\n" in markdown


def test_the_card_is_deterministic_and_ignores_row_order() -> None:
    card = card_for()
    shuffled = make_manifest().sample(frac=1.0, random_state=0).reset_index(drop=True)
    again = build_card(make_config(), make_metrics(), shuffled, make_params(), name="cnn", commit="abc123")
    assert json.dumps(again, sort_keys=True) == json.dumps(card, sort_keys=True)
    assert render_markdown(again) == render_markdown(card)
    json.dumps(card, allow_nan=False)  # plain JSON, no numpy scalars


def test_a_leaky_split_and_lopsided_sample_rates_are_limits() -> None:
    manifest = make_manifest()
    manifest.loc[manifest["split"] == "test", "speaker"] = "tb0"  # a train speaker in test
    manifest.loc[manifest["label"] == "bonafide", "sample_rate"] = 8000  # bona fide all 8 kHz, spoofs 16 kHz
    card = build_card(make_config(), make_metrics(), manifest, make_params(), name="cnn")
    assert card["data"]["speakers_shared"]["train_test"] == 1
    assert any("appear in both train and test" in s for s in card["limitations"])
    assert any("recorded at 8000 Hz: 100% of bona fide, 0% of spoofs" in s for s in card["limitations"])
    assert "no git commit recorded" in render_markdown(card)


def test_build_card_needs_a_test_block() -> None:
    with pytest.raises(ValueError, match="no 'test' block"):
        build_card(make_config(), {"bench": {}}, make_manifest(), make_params())


def test_find_card_in_the_bundle_and_in_the_pipeline_layout(tmp_path: Path) -> None:
    card = card_for()
    bundle = tmp_path / "data" / "models" / "cnn"
    bundle.mkdir(parents=True)
    assert find_card(bundle) is None and load_card_json(bundle) is None
    markdown, _ = write_card(tmp_path / "data" / "cards" / "cnn", card)
    assert find_card(bundle) == markdown.resolve()
    assert load_card_json(bundle) == card
    # an exported or copied bundle carries its own card, which wins
    own, _ = write_card(bundle, {**card, "name": "copied"})
    assert find_card(bundle) == own
    assert load_card_json(bundle)["name"] == "copied"
    assert (bundle / CARD_MARKDOWN).read_text(encoding="utf-8").startswith("---\n")
    # another model's card is not this bundle's
    other = tmp_path / "data" / "models" / "lstm"
    other.mkdir()
    assert find_card(other) is None


def test_model_card_imports_no_torch() -> None:
    code = "import sys, deepfake_audio.model_card; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_the_card_stage_in_dvc_yaml() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    names = list(stages)
    assert names.index("evaluate") < names.index("card") < names.index("report")
    card = stages["card"]
    assert card["foreach"] == "${train.models}"
    do = card["do"]
    assert "python -m stages.card" in do["cmd"] and "--out data/cards/${key}" in do["cmd"]
    for dep in ("data/models/${key}/config.json", "metrics/${key}.json", "data/split/manifest.parquet"):
        assert dep in do["deps"]
    assert "deepfake_audio/model_card.py" in do["deps"]
    assert set(do["params"]) == {"data.sources", "data.eval_sets", "split"}
    assert do["outs"] == ["data/cards/${key}/MODEL_CARD.md", "data/cards/${key}/card.json"]
    # the report stays cheap: it never waits for the cards
    report_deps = stages["report"]["deps"]
    assert not any("cards" in d or d == "stages/card.py" or d.endswith("model_card.py") for d in report_deps)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return session_bundles(tmp_path_factory)


def test_the_card_stage_end_to_end(bundles: dict[str, Path]) -> None:
    from stages import card as card_stage

    root = next(iter(bundles.values())).parents[2]
    manifest_path = root / "data" / "split" / "manifest.parquet"
    manifest = pd.read_parquet(manifest_path)
    test = manifest[manifest["split"] == "test"]
    outputs = {}
    for model, bundle in bundles.items():
        metrics_path = root / "metrics" / f"{model}.json"
        per_attack = {a: 0.05 * (i + 1) for i, a in enumerate(sorted(set(test["attack"]) - {"-"}))}
        metrics = {
            "test": {
                "eer": 0.125,
                "eer_ci": [0.05, 0.2],
                "eer_ci_level": 0.95,
                "min_dcf": 0.3,
                "accuracy": 0.8,
                "roc_auc": 0.9,
                "n_bonafide": int((test["label"] == "bonafide").sum()),
                "n_spoof": int((test["label"] == "spoof").sum()),
                "per_attack_eer": per_attack,
            }
        }
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text(json.dumps(metrics), encoding="utf-8")
        out = root / "data" / "cards" / model
        argv = ["--model", model, "--bundle", str(bundle), "--metrics", str(metrics_path)]
        argv += ["--manifest", str(manifest_path), "--out", str(out), "--params", str(root / "params.yaml")]
        card_stage.main(argv)
        first = {name: (out / name).read_bytes() for name in (CARD_MARKDOWN, CARD_JSON)}
        card_stage.main(argv)  # unchanged inputs: the same bytes (DVC sees no change)
        assert {name: (out / name).read_bytes() for name in (CARD_MARKDOWN, CARD_JSON)} == first
        outputs[model] = out

        assert find_card(bundle) == (out / CARD_MARKDOWN).resolve()
        card = load_card_json(bundle)
        config = json.loads((bundle / "config.json").read_text(encoding="utf-8"))
        assert card["name"] == model and card["model"]["kind"] == config["model"]
        assert card["provenance"]["training_key"] == config["training_key"]
        assert card["calibration"]["slope"] == config["calibration"]["slope"]
        assert card["audio"]["n_samples"] == config["n_samples"]
        for split in ("train", "dev", "test"):
            part = manifest[manifest["split"] == split]
            assert card["data"]["counts"][split]["n_bonafide"] == int((part["label"] == "bonafide").sum())
            assert card["data"]["counts"][split]["n_spoof"] == int((part["label"] == "spoof").sum())
        assert card["data"]["sources"][0]["kind"] == "manifest"
        markdown = (out / CARD_MARKDOWN).read_text(encoding="utf-8")
        assert "Test EER 12.50% (95% CI 5.00–20.00%)" in markdown
        assert "No cross-corpus figure exists" in markdown
        assert f"deepfake-audio predict --model data/models/{model}" in markdown
    assert len(outputs) == len(bundles)
