"""Model cards: what a trained bundle is, what it was trained and tested on, and where it fails.

A card is built from the pipeline's own outputs only, so no model has hand-written text:

- the bundle's ``config.json`` (kind, input, hyper-parameters, training options and summary, the
  audio contract, the dev threshold and calibration, the training key);
- ``metrics/<model>.json`` (``test`` and every eval set: EER with its bootstrap interval, minDCF,
  actDCF, Cllr, accuracy, ROC AUC, per-attack EERs);
- the split manifest (clip counts per split, class, attack and source; speakers; sample rates);
- params ``data.sources``, ``data.eval_sets`` and ``split``.

:func:`build_card` turns them into a JSON-ready dict (``card.json``, what ``GET /v1/models``
returns) and :func:`render_markdown` into ``MODEL_CARD.md``, laid out as in Mitchell et al.,
"Model Cards for Model Reporting" (FAT* 2019) and Hugging Face model cards. The limits section is
generated from the numbers: an eval set's EER against the in-domain test EER, attacks above
:data:`WEAK_EER`, the absence of any cross-corpus figure. Nothing in a card depends on the date or
the machine, so unchanged inputs give byte-identical files (DVC sees no change).

Layout: the ``card@<model>`` stage writes ``data/cards/<model>/`` next to ``data/models/<model>``
(the train stage owns the bundle folder as a whole); an exported or copied bundle may carry its
own ``MODEL_CARD.md``. :func:`find_card` and :func:`load_card_json` look in both places.

This module imports neither torch nor pandas: a torch-free server reads cards through it.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deepfake_audio import __version__
from deepfake_audio.io import atomic_path, write_json
from deepfake_audio.params import as_dict

__all__ = [
    "CARD_JSON",
    "CARD_MARKDOWN",
    "CARD_VERSION",
    "WEAK_EER",
    "build_card",
    "find_card",
    "git_commit",
    "load_card_json",
    "render_markdown",
    "write_card",
]

CARD_MARKDOWN = "MODEL_CARD.md"
CARD_JSON = "card.json"
CARD_VERSION = 1
"""Bumped when the layout of ``card.json`` changes incompatibly."""

WEAK_EER = 0.20
"""An attack or an eval set with an EER above this is listed as a known weakness."""

CHANCE_EER = 0.45
"""An EER at or above this is no better than chance, for practical purposes."""

MAX_ROWS = 15
"""Longer per-attack lists show their worst rows in Markdown; ``card.json`` keeps them all."""

SPLIT_ORDER = ("train", "dev", "test", "excluded")
"""Splits in the order cards show them; ``eval:<name>`` rows (older manifests) follow, sorted."""

BONAFIDE_ATTACK = "-"

SUMMARY_METRICS = (
    "eer",
    "eer_ci",
    "eer_ci_level",
    "eer_threshold",
    "min_dcf",
    "act_dcf",
    "cllr",
    "min_cllr",
    "min_tdcf",
    "accuracy",
    "balanced_accuracy",
    "roc_auc",
    "n_bonafide",
    "n_spoof",
    "mean_source_eer",
    "error",
)
"""The keys of a metrics block a card keeps (the per-slice EERs are kept apart)."""

PARAMETER_COUNT_KEYS = ("n_parameters", "n_params", "parameters")
TRAINING_TIME_KEYS = ("train_time_s", "training_s", "train_s", "wall_s")

SUMMARY_LABELS = {
    "epochs_run": "epochs run",
    "best_epoch": "best epoch (0-based, lowest dev EER)",
    "best_iteration": "best boosting iteration (early-stopped on dev)",
    "iterations": "solver iterations",
    "dev_eer": "dev EER (model selection)",
    "threshold": "dev EER threshold (raw score)",
    "device": "device trained on",
    "n_features": "input features",
    "n_frames": "input frames",
}
"""Readable names of the training-summary keys the model kinds record; others show as their key."""

INPUTS = {
    "utterances": "per-clip statistics of the utterance feature groups (one row per clip)",
    "frames": "frame-level feature matrices (features x frames per clip)",
    "waveform": "the raw waveform",
    "embeddings": "a self-supervised front-end's hidden states",
}

OUTPUTS = {
    "score": "the model's raw score: higher means more likely bona fide. Its scale is the model's "
    "own; compare scores of one model only.",
    "llr": "the calibrated natural-log likelihood ratio of bona fide against spoof, "
    "`slope * score + offset`: above 0 favours bona fide. Comparable across models. Null for a "
    "bundle without calibration.",
    "prob_bonafide": "`sigmoid(llr)`: the probability of bona fide at equal priors (50/50). For "
    "another prior, add its log prior odds to `llr` first. Null without calibration.",
    "decision": "`bonafide` when `score` is at or above the dev EER threshold, else `spoof`.",
}


# ---------------------------------------------------------------------------------------------
# Building the card


def build_card(
    config: Mapping[str, Any],
    metrics: Mapping[str, Any],
    manifest: Any,
    params: Any,
    *,
    name: str | None = None,
    commit: str | None = None,
    weak_eer: float = WEAK_EER,
) -> dict:
    """The facts of one model's card, as JSON-ready data.

    Args:
        config: the bundle's ``config.json``.
        metrics: ``metrics/<model>.json``: ``{"test": block, "<eval set>": block, ...}``.
        manifest: the split manifest, a DataFrame with at least ``split``, ``label``, ``attack``,
            ``source`` and ``speaker`` (``engine``, ``language``, ``sample_rate`` and
            ``duration_s`` are used when present).
        params: the pipeline params (:class:`deepfake_audio.params.Params`, or a mapping with the
            same ``data`` and ``split`` sections).
        name: the model's name in ``train.models`` (default: the bundle's kind).
        commit: the git commit of the source tree, if known.
        weak_eer: EERs above this fraction are listed as known weaknesses.

    Returns:
        A dict of plain data (``card.json``); equal inputs give an equal dict.

    Raises:
        ValueError: ``metrics`` has no ``test`` block, or the manifest lacks a needed column.
    """
    if "test" not in metrics:
        raise ValueError(f"metrics have no 'test' block (blocks: {sorted(metrics)}): run `dvc repro evaluate@<model>`")
    missing = [c for c in ("split", "label", "attack", "source", "speaker") if c not in manifest.columns]
    if missing:
        raise ValueError(f"the split manifest lacks columns {missing}")
    data_params, split_params = _section(params, "data"), _section(params, "split")
    summary = dict(config.get("summary") or {})
    counts = _split_counts(manifest)
    blocks = _blocks(metrics)
    card = {
        "card_version": CARD_VERSION,
        "name": name or str(config.get("model", "model")),
        "model": _model_facts(config, summary),
        "training": _training_facts(config, summary),
        "audio": _audio_facts(config),
        "data": {
            "sources": [
                {"name": n, **spec} for n, spec in zip(_source_names(data_params["sources"]), data_params["sources"])
            ],
            "split": split_params,
            "counts": counts,
            "attacks": _attack_table(manifest),
            "speakers_shared": _shared_speakers(manifest),
            "by_class": _class_profiles(manifest),
        },
        "eval_sets": _eval_set_facts(data_params.get("eval_sets") or {}, metrics),
        "metrics": {k: _summary_block(v) for k, v in blocks.items()},
        "per_attack_eer": {
            k: dict(sorted(v["per_attack_eer"].items())) for k, v in blocks.items() if v.get("per_attack_eer")
        },
        "per_source_eer": {
            k: dict(sorted(v["per_source_eer"].items()))
            for k, v in blocks.items()
            if len(v.get("per_source_eer") or {}) > 1
        },
        "per_condition_eer": {k: v["per_condition_eer"] for k, v in blocks.items() if v.get("per_condition_eer")},
        "weak_eer": weak_eer,
        "calibration": _calibration_facts(config),
        "outputs": dict(OUTPUTS),
        "provenance": {
            "git_commit": commit,
            "training_key": config.get("training_key"),
            "bundle_schema_version": config.get("schema_version"),
            "package_version": __version__,
        },
    }
    card["weaknesses"] = _weaknesses(card, weak_eer)
    card["limitations"] = _limitations(card)
    card["out_of_scope"] = _out_of_scope(card)
    return _plain(card)


def _section(params: Any, name: str) -> dict:
    section = params.get(name, {}) if isinstance(params, Mapping) else getattr(params, name)
    out = as_dict(section)
    if name == "data":
        out.setdefault("sources", [{"kind": "demo"}])
        out.setdefault("eval_sets", {})
    return out


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python numbers, tuples to lists, mapping keys to strings."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # a numpy scalar
        return value.item()
    return value


def _source_names(sources: Sequence[Mapping]) -> list[str]:
    # The rule of deepfake_audio.data.source_names (not imported: it pulls in every source kind):
    # the spec's name, else its kind, numbered when a kind repeats.
    kinds = [str(s.get("kind")) for s in sources]
    return [
        str(s.get("name") or (kinds[i] if kinds.count(kinds[i]) == 1 else f"{kinds[i]}{i}"))
        for i, s in enumerate(sources)
    ]


def _split_order(values: Sequence[str]) -> list[str]:
    known = [s for s in SPLIT_ORDER if s in values]
    return known + sorted(v for v in values if v not in SPLIT_ORDER)


def _split_counts(manifest: Any) -> dict:
    """Per split: clips, bona fide, spoof, speakers, clips per attack and per source and class."""
    out = {}
    splits = [str(s) for s in manifest["split"].astype(str).unique()]
    for split in _split_order(splits):
        part = manifest[manifest["split"].astype(str) == split]
        label = part["label"].astype(str)
        spoof = part[label == "spoof"]
        sources = {}
        for source, rows in part.groupby(part["source"].astype(str), sort=True):
            labels = rows["label"].astype(str)
            sources[source] = {"bonafide": int((labels == "bonafide").sum()), "spoof": int((labels == "spoof").sum())}
        out[split] = {
            "n_clips": int(len(part)),
            "n_bonafide": int((label == "bonafide").sum()),
            "n_spoof": int((label == "spoof").sum()),
            "n_speakers": int(part["speaker"].astype(str).nunique()),
            "attacks": {str(k): int(v) for k, v in sorted(spoof["attack"].astype(str).value_counts().items())},
            "sources": sources,
        }
    return out


def _attack_table(manifest: Any) -> dict:
    """Per attack (``-`` = bona fide): clips per split, and the engines that made it when recorded."""
    out = {}
    splits = _split_order([str(s) for s in manifest["split"].astype(str).unique()])
    has_engine = "engine" in manifest.columns
    for attack, rows in manifest.groupby(manifest["attack"].astype(str), sort=True):
        split = rows["split"].astype(str)
        entry: dict[str, Any] = {"clips": {s: int((split == s).sum()) for s in splits}}
        if has_engine and attack != BONAFIDE_ATTACK:
            engines = sorted({str(e) for e in rows["engine"] if str(e) not in ("", "-", "nan", "None")})
            entry["engines"] = engines
        out[attack] = entry
    return out


def _shared_speakers(manifest: Any) -> dict:
    """Speakers found in more than one of train, dev and test (0 under a speaker-disjoint split)."""
    speakers = {
        s: set(manifest.loc[manifest["split"].astype(str) == s, "speaker"].astype(str))
        for s in ("train", "dev", "test")
    }
    return {
        "train_test": len(speakers["train"] & speakers["test"]),
        "train_dev": len(speakers["train"] & speakers["dev"]),
        "dev_test": len(speakers["dev"] & speakers["test"]),
    }


def _class_profiles(manifest: Any) -> dict:
    """Per class, over the train/dev/test pool: original sample rates, durations and languages."""
    pool = manifest[manifest["split"].astype(str).isin(["train", "dev", "test"])]
    out = {}
    for label in ("bonafide", "spoof"):
        rows = pool[pool["label"].astype(str) == label]
        profile: dict[str, Any] = {"n_clips": int(len(rows))}
        if "sample_rate" in rows.columns and len(rows):
            rates = rows["sample_rate"].astype("int64").value_counts()
            profile["sample_rates"] = {str(k): int(v) for k, v in sorted(rates.items())}
        if "duration_s" in rows.columns and len(rows):
            duration = rows["duration_s"].astype("float64")
            duration = duration[duration.notna()]
            if len(duration):
                profile["duration_s"] = {
                    "min": round(float(duration.min()), 3),
                    "median": round(float(duration.median()), 3),
                    "max": round(float(duration.max()), 3),
                }
        if "language" in rows.columns:
            languages = rows["language"].astype(str)
            languages = languages[~languages.isin(["", "-", "nan", "None"])]
            if len(languages):
                profile["languages"] = {str(k): int(v) for k, v in sorted(languages.value_counts().items())}
        out[label] = profile
    return out


def _blocks(metrics: Mapping[str, Any]) -> dict:
    """``test`` first, then every other block sorted (eval sets)."""
    names = ["test"] + sorted(k for k in metrics if k != "test")
    return {k: dict(metrics[k]) for k in names}


def _summary_block(block: Mapping[str, Any]) -> dict:
    return {k: block[k] for k in SUMMARY_METRICS if k in block}


def _model_facts(config: Mapping, summary: Mapping) -> dict:
    model_input = str(config.get("input", ""))
    n_parameters = next((summary[k] for k in PARAMETER_COUNT_KEYS if isinstance(summary.get(k), (int, float))), None)
    return {
        "kind": config.get("model"),
        "input": model_input,
        "input_description": INPUTS.get(model_input, model_input),
        "params_section": config.get("params_section"),
        "hyper_parameters": dict(sorted((config.get("hyper_parameters") or {}).items())),
        "n_parameters": int(n_parameters) if n_parameters is not None else None,
        "n_features": summary.get("n_features"),
        "n_frames": summary.get("n_frames"),
        "features": _feature_facts(config.get("features") or {}),
    }


def _feature_facts(features: Mapping) -> dict:
    keys = ("n_fft", "hop_length", "n_mels", "fmin", "frame_groups", "utterance_groups", "stats")
    return {k: features[k] for k in keys if k in features}


def _training_facts(config: Mapping, summary: Mapping) -> dict:
    train = dict(config.get("train") or {})
    features_augment = dict((config.get("features") or {}).get("augment") or {})
    time_s = next((summary[k] for k in TRAINING_TIME_KEYS if isinstance(summary.get(k), (int, float))), None)
    wave = dict(train.get("augment") or {})
    spec = dict(train.get("spec_augment") or {})
    return {
        # A kind that trains epoch by epoch records epochs_run; the others (XGBoost, logistic
        # regression) read only balance, seed and device of `train`, and their own section.
        "epoch_loop": "epochs_run" in summary,
        "summary": {k: summary[k] for k in sorted(summary)},
        "epochs": train.get("epochs"),
        "epochs_run": summary.get("epochs_run"),
        "best_epoch": summary.get("best_epoch"),
        "batch_size": train.get("batch_size"),
        "lr": train.get("lr"),
        "weight_decay": train.get("weight_decay"),
        "lr_schedule": train.get("lr_schedule"),
        "patience": train.get("patience"),
        "grad_clip": train.get("grad_clip"),
        "loss": train.get("loss"),
        "balance": train.get("balance"),
        "seed": train.get("seed"),
        "device_requested": train.get("device"),
        "device": summary.get("device"),
        "init_from": train.get("init_from"),
        "training_time_s": time_s,
        "augmentation": {
            "waveform": {"prob": wave.get("prob", 0.0), "max_ops": wave.get("max_ops"), "ops": wave.get("ops", [])},
            "spec_augment": {
                k: spec[k] for k in ("time_masks", "max_time_frames", "feature_masks", "max_feature_rows") if k in spec
            },
            "feature_copies": {"copies": features_augment.get("copies", 0), "ops": features_augment.get("ops", [])},
        },
    }


def _audio_facts(config: Mapping) -> dict:
    audio = dict(config.get("audio") or {})
    sample_rate = audio.get("sample_rate")
    n_samples = config.get("n_samples")
    if n_samples is None and sample_rate and audio.get("duration_s"):
        n_samples = int(round(sample_rate * audio["duration_s"]))
    window_s = n_samples / sample_rate if n_samples and sample_rate else audio.get("duration_s")
    return {
        "sample_rate": sample_rate,
        "duration_s": audio.get("duration_s"),
        "n_samples": n_samples,
        "window_s": window_s,
        "pad": audio.get("pad"),
        "crop": audio.get("crop"),
        "min_duration_s": audio.get("min_duration_s"),
    }


def _calibration_facts(config: Mapping) -> dict:
    calibration = config.get("calibration")
    return {
        "threshold": config.get("threshold"),
        "dev_eer": config.get("dev_eer"),
        "slope": calibration.get("slope") if calibration else None,
        "offset": calibration.get("offset") if calibration else None,
        "fitted_on": calibration.get("fitted_on") if calibration else None,
        "calibrated": bool(calibration),
    }


def _eval_set_facts(eval_sets: Mapping, metrics: Mapping) -> dict:
    """Every set of ``data.eval_sets`` and every non-test block of the metrics: spec and counts."""
    out = {}
    for name in sorted(set(eval_sets) | {k for k in metrics if k != "test"}):
        block = metrics.get(name)
        entry: dict[str, Any] = {
            "spec": dict(eval_sets[name]) if name in eval_sets else None,
            "scored": block is not None,
        }
        if block is not None:
            entry["n_bonafide"] = block.get("n_bonafide")
            entry["n_spoof"] = block.get("n_spoof")
            entry["attacks"] = sorted(block.get("per_attack_eer") or {})
            if "error" in block:
                entry["error"] = block["error"]
        out[name] = entry
    return out


def _weaknesses(card: Mapping, weak_eer: float) -> list[dict]:
    """Eval sets and attacks whose EER is above ``weak_eer``, worst first within each set."""
    out = []
    for set_name, block in card["metrics"].items():
        if set_name != "test" and isinstance(block.get("eer"), (int, float)) and block["eer"] > weak_eer:
            out.append({"set": set_name, "attack": None, "eer": block["eer"]})
        attacks = card["per_attack_eer"].get(set_name, {})
        worst = sorted(((e, a) for a, e in attacks.items() if e > weak_eer), key=lambda t: (-t[0], t[1]))
        out.extend({"set": set_name, "attack": a, "eer": e} for e, a in worst)
    return out


# ---------------------------------------------------------------------------------------------
# Generated text


def pct(value: Any) -> str:
    """A fraction as a percentage with 2 decimals (``0.2283 -> '22.83%'``); ``'n/a'`` when absent."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.2f}%"


def ci_text(block: Mapping) -> str | None:
    """``'95% CI 17.39–28.53%'`` from ``eer_ci`` and ``eer_ci_level``; ``None`` without an interval."""
    ci = block.get("eer_ci")
    if not ci or len(ci) != 2:
        return None
    level = block.get("eer_ci_level")
    prefix = f"{100 * level:g}% CI" if isinstance(level, (int, float)) else "CI"
    return f"{prefix} {100 * ci[0]:.2f}–{100 * ci[1]:.2f}%"


def _eer_with_ci(block: Mapping) -> str:
    ci = ci_text(block)
    return f"{pct(block.get('eer'))} ({ci})" if ci else pct(block.get("eer"))


def _spec_text(spec: Mapping | None) -> str:
    if not spec:
        return "not in params `data.eval_sets`"
    options = "".join(f", {k} `{_value(v)}`" for k, v in spec.items() if k not in ("kind", "name"))
    return f"kind `{spec.get('kind')}`{options}"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _limitations(card: Mapping) -> list[str]:
    """Sentences that state the limits the card's own numbers show."""
    out = []
    test = card["metrics"]["test"]
    test_eer = test.get("eer")
    scored = {k: v for k, v in card["metrics"].items() if k != "test" and isinstance(v.get("eer"), (int, float))}
    if not isinstance(test_eer, (int, float)):
        out.append(
            f"The test split could not be scored ({test.get('error', 'no EER')}): this model has no measured performance."
        )
    elif not scored:
        out.append(
            "No cross-corpus figure exists: params `data.eval_sets` scores no set this model was never trained on, "
            f"so every number here is in-domain (the same corpora, attacks and recording conditions as training). "
            f"The test EER of {_eer_with_ci(test)} overstates how it does on speech from unseen spoofing systems, "
            "channels and languages: add an eval set before relying on it."
        )
    for name, block in scored.items():
        eer = block["eer"]
        ci = ci_text(block)
        head = (
            f"On {name} (speech it was never trained on) its EER is {pct(eer)}"
            + (f" ({ci})" if ci else "")
            + f", against {pct(test_eer)} in-domain test"
        )
        if eer >= CHANCE_EER:
            out.append(f"{head}: no better than chance there; do not rely on it for audio like {name}'s.")
        elif eer > card["weak_eer"] or (isinstance(test_eer, (int, float)) and eer > test_eer + 0.05):
            out.append(
                f"{head}: do not rely on it for audio like {name}'s, or for spoofing systems it was not trained on."
            )
        else:
            out.append(f"{head}: it held up on this set, but one set is not every unseen spoofing system.")
    for name, entry in card["eval_sets"].items():
        if not entry["scored"]:
            out.append(
                f"Eval set {name} is configured but has no metrics block: run `dvc repro evaluate@{card['name']}`."
            )
        elif "error" in entry:
            out.append(f"Eval set {name} has no EER: {entry['error']}.")
    if isinstance(test_eer, (int, float)) and test_eer > card["weak_eer"]:
        out.append(
            f"Even in-domain its test EER is {pct(test_eer)}, above the {pct(card['weak_eer'])} line this card "
            "calls weak: treat its decisions as a screening aid at best."
        )
    weak_attacks = [w for w in card["weaknesses"] if w["set"] == "test" and w["attack"] is not None]
    if weak_attacks:
        listed = ", ".join(f"{w['attack']}{_engine_suffix(card, w['attack'])} {pct(w['eer'])}" for w in weak_attacks)
        out.append(f"Known weaknesses on test (attack EER above {pct(card['weak_eer'])}): {listed}.")
    unseen = _unseen_attacks(card)
    if unseen:
        which = f"Attack {unseen[0]} has" if len(unseen) == 1 else f"Attacks {', '.join(unseen)} have"
        out.append(
            f"{which} test clips but none in train (split strategy `{card['data']['split'].get('strategy')}`): "
            "their test EERs are this model's only unseen-attack figures."
        )
    if not test.get("eer_ci"):
        out.append(
            "No bootstrap interval was computed (params `evaluate.bootstrap: 0`): the EERs carry no stated uncertainty."
        )
    elif isinstance(test.get("n_bonafide"), int) and isinstance(test.get("n_spoof"), int):
        width = 100 * (test["eer_ci"][1] - test["eer_ci"][0])
        out.append(
            f"The test set has {test['n_bonafide']} bona fide and {test['n_spoof']} spoofed clips: its EER interval "
            f"is {width:.2f} points wide, and per-attack EERs rest on fewer clips still."
        )
    shared = card["data"]["speakers_shared"]
    if shared["train_test"]:
        out.append(
            f"{shared['train_test']} speakers appear in both train and test (split strategy "
            f"`{card['data']['split'].get('strategy')}`): the test EER is optimistic for new speakers."
        )
    out.extend(_channel_limits(card))
    if any(s.get("kind") == "demo" for s in card["data"]["sources"]):
        out.append(
            "It was trained on the embedded demo corpus (offline TTS engines and vocoders over Debian-packaged "
            "recordings): a demonstration of the pipeline, not a detector for real-world audio."
        )
    audio = card["audio"]
    window = _seconds(audio["window_s"])
    part = {"start": "first", "center": "middle"}.get(str(audio["crop"]), str(audio["crop"]))
    out.append(
        f"It hears {window} s of audio ({audio['n_samples']} samples at {audio['sample_rate']} Hz). Every input is "
        f"resampled to {audio['sample_rate']} Hz, so content above {audio['sample_rate'] / 2000:g} kHz is lost; a "
        f"shorter clip is padded (`{audio['pad']}`). The figures above score each clip's {part} {window} s alone; "
        f"`predict` scores a longer file whole, in windows of {window} s whose scores it aggregates (`--aggregate`), "
        "which was not evaluated here: `--scope first` scores a file as the metrics were measured."
    )
    if not card["calibration"]["calibrated"]:
        out.append(
            "The bundle has no calibration: `llr` and `prob_bonafide` are null; only `score` and `decision` exist."
        )
    else:
        drift = [
            (k, b["act_dcf"] - b["min_dcf"])
            for k, b in card["metrics"].items()
            if isinstance(b.get("act_dcf"), (int, float)) and isinstance(b.get("min_dcf"), (int, float))
        ]
        for name, gap in drift:
            if gap > 0.1:
                block = card["metrics"][name]
                out.append(
                    f"On {name} the dev-fitted calibration costs {gap:.4f} over the best threshold (actDCF "
                    f"{block['act_dcf']:.4f} against minDCF {block['min_dcf']:.4f}): `llr`, `prob_bonafide` and "
                    "`decision` are miscalibrated there."
                )
    out.append(
        "It is not a speaker-verification system: it judges whether speech is bona fide or spoofed, not who is "
        "speaking, and a `bonafide` decision does not mean the speaker is who they claim to be."
    )
    return out


def _channel_limits(card: Mapping) -> list[str]:
    """Sample rates or languages present in one class and (almost) absent from the other: a shortcut."""
    out = []
    profiles = card["data"]["by_class"]
    for field, what in (("sample_rates", "recorded at {} Hz"), ("languages", "in language {}")):
        bona, spoof = profiles["bonafide"].get(field), profiles["spoof"].get(field)
        if not bona or not spoof:
            continue
        n_bona, n_spoof = sum(bona.values()), sum(spoof.values())
        lopsided = []
        for value in sorted(set(bona) | set(spoof)):
            share_bona, share_spoof = bona.get(value, 0) / n_bona, spoof.get(value, 0) / n_spoof
            if max(share_bona, share_spoof) >= 0.1 and min(share_bona, share_spoof) < 0.02:
                lopsided.append(
                    f"{what.format(value)}: {100 * share_bona:.0f}% of bona fide, {100 * share_spoof:.0f}% of spoofs"
                )
        if lopsided:
            out.append(
                "The classes differ in ways a detector can learn instead of spoofing artefacts ("
                + "; ".join(lopsided)
                + "): check it on an eval set whose classes do not differ so."
            )
    return out


def _unseen_attacks(card: Mapping) -> list[str]:
    attacks = card["data"]["attacks"]
    return [
        a
        for a, entry in attacks.items()
        if a != BONAFIDE_ATTACK and entry["clips"].get("test", 0) and not entry["clips"].get("train", 0)
    ]


def _engine_suffix(card: Mapping, attack: str) -> str:
    engines = card["data"]["attacks"].get(attack, {}).get("engines")
    return f" ({', '.join(engines)})" if engines else ""


def _seconds(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else "n/a"


def _out_of_scope(card: Mapping) -> list[str]:
    return [
        "Sole evidence in legal, forensic, journalistic or disciplinary decisions: its errors are measured above "
        "and are not small; a person must review every consequential decision.",
        "Speaker identification or verification, and authenticating a caller or a voice login by itself.",
        "Audio other than speech (music, singing, environmental sound), or speech mixed with music or other voices.",
        "Spoofing systems, codecs, channels and languages unlike those listed under Training data, until an eval set "
        "shows how it does on them.",
        "Detecting edits such as splices or partial replacement within a recording: it scores whole clips or windows.",
    ]


# ---------------------------------------------------------------------------------------------
# Markdown


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: Sequence[str] | None = None) -> list[str]:
    """A GitHub-flavoured Markdown table; ``align``: ``l`` or ``r`` per column (default: left)."""
    align = align or ["l"] * len(header)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _cell(value: Any) -> str:
    text = _value(value) if not isinstance(value, str) else value
    return text.replace("|", "\\|").replace("\n", " ")


def _num(value: Any, digits: int = 4) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def render_markdown(card: Mapping[str, Any]) -> str:
    """``MODEL_CARD.md`` for a card from :func:`build_card`: the same facts, for people."""
    name, model = card["name"], card["model"]
    test = card["metrics"]["test"]
    lines = [
        "---",
        "library_name: deepfake-audio",
        "tags: [audio, anti-spoofing, audio-deepfake-detection, " + str(model["kind"]) + "]",
        "---",
        "",
        f"# Model card: `{name}`",
        "",
        f"A spoofed-speech detector: it scores a speech clip as bona fide (human) or spoofed (TTS, voice "
        f"conversion, vocoded or codec-resynthesised). Kind `{model['kind']}`, reading {model['input_description']}. "
        f"Test EER {_eer_with_ci(test)}"
        + "".join(f"; {k} EER {_eer_with_ci(b)}" for k, b in card["metrics"].items() if k != "test" and "eer" in b)
        + ".",
        "",
        "This card is generated by the pipeline (`dvc repro card@" + name + "`) from the bundle's `config.json`, "
        f"`metrics/{name}.json`, the split manifest and `params.yaml`; edit those, not this file.",
        "",
    ]
    lines += _model_details(card)
    lines += _intended_use(card)
    lines += _training_data(card)
    lines += _evaluation_data(card)
    lines += _metrics_section(card)
    lines += _quantitative(card)
    lines += _calibration_section(card)
    lines += ["## Limitations and ethical considerations", ""]
    lines += [f"- {s}" for s in card["limitations"]]
    lines += [
        "",
        "Misuse: a detector's scores can guide the tuning of a spoofing system until it passes. Its outputs measure "
        "how much a clip resembles the bona fide and spoofed speech it was trained on: they are not proof of "
        "authenticity or of forgery.",
        "",
    ]
    lines += _how_to_use(card)
    lines += _provenance(card)
    return "\n".join(lines).rstrip("\n") + "\n"


def _model_details(card: Mapping) -> list[str]:
    model, training, audio = card["model"], card["training"], card["audio"]
    rows = [
        ("name", f"`{card['name']}`"),
        ("kind", f"`{model['kind']}` (params section `{model['params_section']}`)"),
        ("input", f"`{model['input']}`: {model['input_description']}"),
    ]
    if model.get("n_features") is not None:
        shape = f"{model['n_features']} features" + (f" x {model['n_frames']} frames" if model.get("n_frames") else "")
        rows.append(("input shape", shape))
    if model.get("n_parameters") is not None:
        rows.append(("parameters", f"{model['n_parameters']:,}"))
    rows.append(
        (
            "audio",
            f"{audio['sample_rate']} Hz mono, {_seconds(audio['window_s'])} s per clip ({audio['n_samples']} samples), pad `{audio['pad']}`, crop `{audio['crop']}`",
        )
    )
    features = model.get("features") or {}
    if features:
        rows.append(
            (
                "features",
                ", ".join(f"{k} {_value(features[k])}" for k in ("n_fft", "hop_length", "n_mels") if k in features)
                + (
                    f"; utterance statistics {_value(features['stats'])}"
                    if model["input"] == "utterances" and "stats" in features
                    else ""
                ),
            )
        )
    rows.append(("output", "`score`, `llr`, `prob_bonafide`, `decision` (see Calibration)"))
    lines = ["## Model details", ""] + _table(["field", "value"], rows) + [""]
    hyper = model.get("hyper_parameters") or {}
    if hyper:
        lines += ["### Hyper-parameters", ""]
        lines += _table(["key", "value"], [(f"`{k}`", _value(v)) for k, v in hyper.items()])
        lines.append("")
    lines += ["### Training", ""]
    rows = []
    for key, value in training["summary"].items():
        if key in ("threshold",):
            continue
        shown = pct(value) if key == "dev_eer" else _value(value)
        rows.append((SUMMARY_LABELS.get(key, key), shown))
    if training["training_time_s"] is not None:
        rows.append(("training time", f"{training['training_time_s']:.0f} s"))
    rows.append(("device requested", f"`{training['device_requested']}`"))
    rows.append(("seed", _value(training["seed"])))
    rows.append(("class balance", f"`{training['balance']}`"))
    if training["epoch_loop"]:
        rows += [
            ("epochs (max)", _value(training["epochs"])),
            ("batch size", _value(training["batch_size"])),
            (
                "learning rate",
                f"{_value(training['lr'])} (AdamW, weight decay {_value(training['weight_decay'])}, schedule `{training['lr_schedule']}`)",
            ),
            ("early stopping", f"patience {_value(training['patience'])} epochs on dev EER"),
            ("gradient clip", _value(training["grad_clip"])),
            ("loss", f"`{training['loss']}`"),
        ]
    aug = training["augmentation"]
    feature_copies = aug["feature_copies"]
    rows.append(
        (
            "feature-stage augmentation",
            f"{feature_copies['copies']} copies per train clip ({', '.join(feature_copies['ops'])})"
            if feature_copies.get("copies")
            else "off",
        )
    )
    if training["epoch_loop"]:
        wave, spec = aug["waveform"], aug["spec_augment"]
        rows.append(
            (
                "waveform augmentation (audio-crop models)",
                f"p {_value(wave['prob'])}, up to {wave['max_ops']} of {', '.join(wave['ops'])}"
                if wave.get("prob")
                else "off",
            )
        )
        masks = spec.get("time_masks", 0) or spec.get("feature_masks", 0)
        rows.append(
            (
                "SpecAugment",
                f"{spec.get('time_masks', 0)} time masks (<= {spec.get('max_time_frames')} frames), "
                f"{spec.get('feature_masks', 0)} feature masks (<= {spec.get('max_feature_rows')} rows)"
                if masks
                else "off",
            )
        )
    if training.get("init_from"):
        rows.append(("initialised from", f"`{training['init_from']}`"))
    if not training["epoch_loop"]:
        rows.append(("note", "trained without an epoch loop: from `train` it reads only balance, seed and device"))
    lines += _table(["field", "value"], rows) + [""]
    return lines


def _intended_use(card: Mapping) -> list[str]:
    audio = card["audio"]
    return [
        "## Intended use",
        "",
        "- **Primary use:** research and engineering on spoofed-speech detection: comparing detectors, "
        "screening speech clips for synthetic or converted voices, and triaging clips for human review.",
        f"- **Input:** speech audio in any format soundfile reads, any sample rate, mono or stereo (downmixed), "
        f"resampled to {audio['sample_rate']} Hz; the model hears {_seconds(audio['window_s'])} s per clip.",
        "- **Users:** researchers and engineers who read the limits below.",
        "",
        "### Out of scope",
        "",
        *[f"- {s}" for s in card["out_of_scope"]],
        "",
    ]


def _training_data(card: Mapping) -> list[str]:
    data = card["data"]
    split = data["split"]
    counts = data["counts"]
    splits = list(counts)
    lines = ["## Training data", "", "Sources (params `data.sources`):", ""]
    for spec in data["sources"]:
        lines.append(f"- `{spec['name']}`: {_spec_text(spec)}")
    strategy = split.get("strategy")
    fractions = ", ".join(f"{k} {_value(split.get(k))}" for k in ("train", "dev", "test"))
    lines += [
        "",
        f"Split (params `split`): strategy `{strategy}`, {fractions}, seed {_value(split.get('seed'))}"
        + (f", unseen attacks {', '.join(split['unseen_attacks'])}" if split.get("unseen_attacks") else "")
        + (
            f", unseen attack fraction {_value(split['unseen_attack_fraction'])}"
            if split.get("unseen_attack_fraction")
            else ""
        )
        + ". Train fits the model and the feature scaler; dev picks the best epoch, the threshold and the calibration; "
        "test is scored once, at the dev threshold.",
        "",
    ]
    shared = data["speakers_shared"]
    lines.append(
        f"Speakers shared between splits: train-test {shared['train_test']}, train-dev {shared['train_dev']}, "
        f"dev-test {shared['dev_test']}."
    )
    lines.append("")
    rows = [
        (s, c["n_clips"], c["n_bonafide"], c["n_spoof"], c["n_speakers"], len(c["attacks"])) for s, c in counts.items()
    ]
    lines += _table(
        ["split", "clips", "bona fide", "spoof", "speakers", "attacks"], rows, ["l", "r", "r", "r", "r", "r"]
    )
    lines += ["", "Clips per class and attack (split manifest; clips the features stage rejected are included):", ""]
    header = ["attack", "engine", *splits, "total"]
    rows = []
    for attack, entry in data["attacks"].items():
        label = "bona fide" if attack == BONAFIDE_ATTACK else f"`{attack}`"
        engine = ", ".join(entry.get("engines") or []) or ("-" if attack == BONAFIDE_ATTACK else "")
        clips = [entry["clips"].get(s, 0) for s in splits]
        rows.append((label, engine, *clips, sum(clips)))
    lines += _table(header, rows, ["l", "l", *["r"] * (len(splits) + 1)])
    sources = sorted({src for c in counts.values() for src in c["sources"]})
    if sources:
        lines += ["", "Clips per source (bona fide / spoof):", ""]
        rows = [(f"`{src}`", *(_pair(counts[s]["sources"].get(src)) for s in splits)) for src in sources]
        lines += _table(["source", *splits], rows, ["l", *["r"] * len(splits)])
    profile_rows = []
    for label, profile in data["by_class"].items():
        rates = ", ".join(f"{k} Hz: {v}" for k, v in (profile.get("sample_rates") or {}).items())
        duration = profile.get("duration_s")
        duration_text = f"{duration['min']:g} / {duration['median']:g} / {duration['max']:g}" if duration else "n/a"
        languages = profile.get("languages") or {}
        top = sorted(languages.items(), key=lambda t: (-t[1], t[0]))[:MAX_ROWS]
        language_text = ", ".join(f"{k}: {v}" for k, v in top) if languages else "not recorded"
        if len(languages) > len(top):
            language_text += f" and {len(languages) - len(top)} more"
        profile_rows.append(
            (
                "bona fide" if label == "bonafide" else "spoof",
                profile["n_clips"],
                rates or "n/a",
                duration_text,
                language_text,
            )
        )
    lines += ["", "Recording conditions per class (train, dev and test):", ""]
    lines += _table(
        ["class", "clips", "original sample rates (clips)", "duration s (min / median / max)", "languages (clips)"],
        profile_rows,
        ["l", "r", "l", "l", "l"],
    )
    lines.append("")
    return lines


def _attack_list(attacks: Sequence[str]) -> str:
    if not attacks:
        return ""
    if len(attacks) <= MAX_ROWS:
        return "; attacks " + ", ".join(f"`{a}`" for a in attacks)
    return f"; {len(attacks)} attacks (listed in card.json)"


def _pair(value: Mapping | None) -> str:
    return f"{value['bonafide']} / {value['spoof']}" if value else "0 / 0"


def _evaluation_data(card: Mapping) -> list[str]:
    test = card["metrics"]["test"]
    lines = [
        "## Evaluation data",
        "",
        f"- **test**: the held-out test split of the training sources above ({_value(test.get('n_bonafide'))} bona fide, "
        f"{_value(test.get('n_spoof'))} spoof): in-domain.",
    ]
    if not card["eval_sets"]:
        lines.append(
            "- **No eval set**: params `data.eval_sets` is empty, so no corpus the model was never trained on was scored."
        )
    for name, entry in card["eval_sets"].items():
        if entry["scored"]:
            counts = f"{_value(entry.get('n_bonafide'))} bona fide, {_value(entry.get('n_spoof'))} spoof"
            attacks = _attack_list(entry.get("attacks") or [])
            lines.append(
                f"- **{name}** ({_spec_text(entry['spec'])}): {counts}{attacks}. Never trained on, scaled on or early-stopped on."
            )
        else:
            lines.append(f"- **{name}** ({_spec_text(entry['spec'])}): not scored yet.")
    lines.append("")
    return lines


def _metrics_section(card: Mapping) -> list[str]:
    lines = [
        "## Metrics",
        "",
        "EER: equal error rate, threshold-free (lower is better), with its stratified bootstrap interval. "
        "minDCF: the ASVspoof 5 normalised detection cost at the best threshold (0 perfect, 1 uninformative); "
        "actDCF: the same cost at the Bayes threshold of the calibrated LLRs. Cllr: the log-likelihood-ratio "
        "cost of the calibrated LLRs, in bits (1 = uninformative). Accuracy: at the dev EER threshold, as "
        "deployed. ROC AUC: bona fide as the positive class.",
        "",
    ]
    rows = []
    for name, block in card["metrics"].items():
        if "eer" not in block:
            rows.append(
                (
                    name,
                    _value(block.get("n_bonafide")),
                    _value(block.get("n_spoof")),
                    block.get("error", "n/a"),
                    *["n/a"] * 6,
                )
            )
            continue
        ci = block.get("eer_ci")
        rows.append(
            (
                name,
                _value(block.get("n_bonafide")),
                _value(block.get("n_spoof")),
                pct(block["eer"]),
                f"{100 * ci[0]:.2f}–{100 * ci[1]:.2f}%" if ci else "n/a",
                _num(block.get("min_dcf")),
                _num(block.get("act_dcf")),
                _num(block.get("cllr")),
                pct(block.get("accuracy")),
                _num(block.get("roc_auc")),
            )
        )
    level = card["metrics"]["test"].get("eer_ci_level")
    ci_header = f"EER {100 * level:g}% CI" if isinstance(level, (int, float)) else "EER CI"
    lines += _table(
        ["set", "bona fide", "spoof", "EER", ci_header, "minDCF", "actDCF", "Cllr (bits)", "accuracy", "ROC AUC"],
        rows,
        ["l", *["r"] * 9],
    )
    lines.append("")
    return lines


def _quantitative(card: Mapping) -> list[str]:
    lines = ["## Quantitative analyses", ""]
    weak = card["weak_eer"]
    test_attacks = card["per_attack_eer"].get("test", {})
    attacks = card["data"]["attacks"]
    if test_attacks:
        lines += [
            "### Per attack (test)",
            "",
            f"Each attack's spoofs against all bona fide test clips; weak: EER above {pct(weak)}.",
            "",
        ]
        rows = []
        for attack, eer in test_attacks.items():
            entry = attacks.get(attack, {"clips": {}})
            trained = entry["clips"].get("train", 0)
            flags = []
            if eer > weak:
                flags.append("weak")
            if not trained:
                flags.append("unseen in training")
            rows.append(
                (
                    f"`{attack}`",
                    ", ".join(entry.get("engines") or []),
                    trained,
                    entry["clips"].get("test", 0),
                    pct(eer),
                    "; ".join(flags),
                )
            )
        lines += _table(
            ["attack", "engine", "train clips", "test clips", "EER", "note"], rows, ["l", "l", "r", "r", "r", "l"]
        )
        lines.append("")
    others = [k for k in card["metrics"] if k != "test"]
    if others:
        lines += ["### Per eval set", ""]
        test_eer = card["metrics"]["test"].get("eer")
        rows = []
        for name in others:
            block = card["metrics"][name]
            eer = block.get("eer")
            delta = (
                f"{100 * (eer - test_eer):+.2f} points"
                if isinstance(eer, (int, float)) and isinstance(test_eer, (int, float))
                else "n/a"
            )
            note = "weak" if isinstance(eer, (int, float)) and eer > weak else ""
            rows.append((name, _eer_with_ci(block) if eer is not None else block.get("error", "n/a"), delta, note))
        lines += _table(["eval set", "EER", "vs test", "note"], rows, ["l", "r", "r", "l"])
        lines.append("")
        for name in others:
            per_attack = card["per_attack_eer"].get(name)
            if per_attack:
                n_weak = sum(e > weak for e in per_attack.values())
                shown = _worst(per_attack)
                title = f"Per attack on {name} ({n_weak} of {len(per_attack)} above {pct(weak)}"
                title += f"; the {len(shown)} worst, all in card.json):" if len(shown) < len(per_attack) else "):"
                lines += [title, ""]
                rows = [(f"`{a}`", pct(e), "weak" if e > weak else "") for a, e in shown.items()]
                lines += _table(["attack", "EER", "note"], rows, ["l", "r", "l"])
                lines.append("")
    slices = [("source", name, eers) for name, eers in card["per_source_eer"].items()]
    slices += [
        (column, name, values)
        for name, conditions in card["per_condition_eer"].items()
        for column, values in sorted(conditions.items())
    ]
    for column, name, eers in slices:
        shown = _worst(dict(sorted(eers.items())))
        more = f" (the {len(shown)} worst of {len(eers)}, all in card.json)" if len(shown) < len(eers) else ""
        lines += [f"Per {column} on {name}{more}:", ""]
        lines += _table([column, "EER"], [(f"`{v}`", pct(e)) for v, e in shown.items()], ["l", "r"])
        lines.append("")
    lines += ["### Known weaknesses", ""]
    lines += [f"- {s}" for s in _weakness_lines(card)] or [f"- No attack or eval set has an EER above {pct(weak)}."]
    lines.append("")
    return lines


def _weakness_lines(card: Mapping) -> list[str]:
    """One line per weak eval set and per weak test attack; an eval set's weak attacks in one line."""
    out = []
    for set_name in card["metrics"]:
        found = [w for w in card["weaknesses"] if w["set"] == set_name]
        whole = [w for w in found if w["attack"] is None]
        attacks = [w for w in found if w["attack"] is not None]
        out += [f"eval set {set_name}: EER {pct(w['eer'])}" for w in whole]
        if set_name == "test" or len(attacks) <= 3:
            out += [
                f"attack `{w['attack']}`{_engine_suffix(card, w['attack'])} on {set_name}: EER {pct(w['eer'])}"
                for w in attacks
            ]
        else:
            total = len(card["per_attack_eer"].get(set_name, {}))
            worst = ", ".join(f"`{w['attack']}` {pct(w['eer'])}" for w in attacks[:3])
            out.append(
                f"{len(attacks)} of {total} attacks on {set_name} have an EER above {pct(card['weak_eer'])} (worst: {worst})"
            )
    return out


def _worst(per_attack: Mapping[str, float]) -> dict[str, float]:
    """All of ``per_attack`` when short, else its :data:`MAX_ROWS` highest EERs, worst first."""
    if len(per_attack) <= MAX_ROWS:
        return dict(per_attack)
    return dict(sorted(per_attack.items(), key=lambda t: (-t[1], t[0]))[:MAX_ROWS])


def _calibration_section(card: Mapping) -> list[str]:
    cal = card["calibration"]
    lines = ["## Calibration", ""]
    lines.append(
        f"- **Threshold:** `decision` is `bonafide` when `score` >= {_num(cal['threshold'], 6)}, the dev-set EER "
        f"threshold (dev EER {pct(cal['dev_eer'])}), fixed before test was scored."
    )
    if cal["calibrated"]:
        lines.append(
            f"- **Calibration:** `llr = {_num(cal['slope'], 6)} * score + {_num(cal['offset'], 6)}` (natural log), "
            f"fitted on {cal['fitted_on']} by class-balanced logistic regression. It is monotone: EER and ROC are unchanged."
        )
    else:
        lines.append(
            "- **Calibration:** none: this bundle has no `calibration`, so `llr` and `prob_bonafide` are null."
        )
    lines += ["", "What the outputs mean:", ""]
    lines += [f"- `{k}`: {v}" for k, v in card["outputs"].items()]
    lines.append("")
    return lines


def _how_to_use(card: Mapping) -> list[str]:
    name = card["name"]
    window = _seconds(card["audio"]["window_s"])
    return [
        "## How to use",
        "",
        "```bash",
        f"deepfake-audio predict --model data/models/{name} clip.wav other/   # a table: score, llr, prob_bonafide, decision",
        f"deepfake-audio predict --model data/models/{name} --scope first --format json clip.wav   # as evaluated: its first {window} s",
        f"deepfake-audio serve --model data/models/{name} --port 8000         # POST /v1/score (multipart field `file`)",
        "```",
        "",
    ]


def _provenance(card: Mapping) -> list[str]:
    prov = card["provenance"]
    commit = prov.get("git_commit")
    return [
        "## Provenance",
        "",
        f"- Source tree: git commit `{commit}` when the card was generated (uncommitted changes are not recorded)."
        if commit
        else "- Source tree: no git commit recorded.",
        f"- Training key: `{prov.get('training_key')}` (a digest of the training code, inputs and options; "
        "the train stage retrains exactly when it changes)."
        if prov.get("training_key")
        else "- Training key: not recorded.",
        f"- Bundle schema version {_value(prov.get('bundle_schema_version'))}; deepfake-audio {prov.get('package_version')}.",
        "",
    ]


# ---------------------------------------------------------------------------------------------
# Files


def write_card(out_dir: Path | str, card: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``MODEL_CARD.md`` and ``card.json`` into ``out_dir`` (each to a temporary name, then renamed)."""
    out_dir = Path(out_dir)
    markdown = out_dir / CARD_MARKDOWN
    with atomic_path(markdown) as tmp:
        tmp.write_text(render_markdown(card), encoding="utf-8")
    write_json(out_dir / CARD_JSON, card)
    return markdown, out_dir / CARD_JSON


def _card_file(bundle_dir: Path | str, filename: str) -> Path | None:
    bundle_dir = Path(bundle_dir)
    own = bundle_dir / filename
    if own.is_file():  # an exported or copied bundle carries its own card
        return own
    resolved = bundle_dir.resolve()
    pipeline = resolved.parent.parent / "cards" / resolved.name / filename  # data/models/<m> <-> data/cards/<m>
    return pipeline if pipeline.is_file() else None


def find_card(bundle_dir: Path | str) -> Path | None:
    """The ``MODEL_CARD.md`` of a bundle: its own, else the pipeline's ``data/cards/<m>/``; ``None`` if neither."""
    return _card_file(bundle_dir, CARD_MARKDOWN)


def load_card_json(bundle_dir: Path | str) -> dict | None:
    """The ``card.json`` of a bundle, found as :func:`find_card` finds the Markdown; ``None`` if there is none."""
    path = _card_file(bundle_dir, CARD_JSON)
    return json.loads(path.read_text(encoding="utf-8")) if path is not None else None


def git_commit(root: Path | str = ".") -> str | None:
    """``git rev-parse HEAD`` in ``root``; ``None`` outside a git work tree or without git."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and commit else None
