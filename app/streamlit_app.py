"""Web page: upload a speech clip and see whether a trained detector takes it for bona fide or spoof.

Run it with ``make app`` (``streamlit run app/streamlit_app.py --server.address localhost``).
Models come from ``data/models`` and their test EER from ``metrics/``; the environment variables
``DEEPFAKE_AUDIO_MODELS_DIR`` and ``DEEPFAKE_AUDIO_METRICS_DIR`` point elsewhere. The logic lives
in :mod:`deepfake_audio.webapp`; this script only lays it out.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from deepfake_audio import webapp

ROOT = Path(__file__).resolve().parents[1]


@st.cache_resource(show_spinner="Loading the model...", max_entries=4)
def load_predictor(bundle_dir: str, config_mtime_ns: int):
    """One loaded model per bundle; ``config_mtime_ns`` reloads a bundle that was retrained."""
    from deepfake_audio.predict import Predictor

    return Predictor.load(Path(bundle_dir))


def pick_model(choices: list[webapp.ModelChoice], default: int, models_dir: Path) -> webapp.ModelChoice:
    """The model selectbox (default: the lowest dev EER) with the chosen model's EERs beside it."""
    by_name = {c.name: c for c in choices}
    with st.container(border=True):
        left, right = st.columns([3, 2], vertical_alignment="center")
        name = left.selectbox(
            "Model",
            list(by_name),
            index=default,
            key="model",
            format_func=lambda n: by_name[n].label,
            help=f"Every bundle under `{models_dir}`; the default has the lowest dev EER.",
        )
        choice = by_name[name]
        if choice.test_eer is None:
            test = "_no test metrics_ (run `dvc repro` to evaluate it)"
        else:
            test = f"**{webapp.format_eer(choice.test_eer)}**"
        right.markdown(
            f"Test EER: {test}  \nDev EER: **{webapp.format_eer(choice.dev_eer)}**",
            help="Equal error rates (lower is better) on the pipeline's test split "
            "(metrics/<model>.json) and on the dev split, where the decision threshold and the "
            "calibration were fitted.",
        )
        st.caption(f"Kind `{choice.model}`, bundle `{choice.path}`")
        card = webapp.model_card_text(choice.path)
        if card is None:
            st.caption("No model card yet: `dvc repro` writes one per model (data/cards/<model>/MODEL_CARD.md).")
        else:
            with st.expander("Model card: its data, metrics and limits"):
                st.markdown(card)
    return choice


def show_result(analysis: webapp.Analysis) -> None:
    colour = "green" if analysis.decision == "bonafide" else "red"
    st.markdown(f"### Decision: :{colour}[{analysis.decision_label}]")
    cols = st.columns(4)
    if analysis.prob_bonafide is not None:
        cols[0].metric(
            "P(bona fide)",
            f"{analysis.prob_bonafide:.1%}",
            help="Calibrated on the dev split, at equal priors of bona fide and spoof.",
        )
    else:
        cols[0].metric("P(bona fide)", "n/a", help="This bundle has no calibration.")
    margin = webapp.format_signed(analysis.score - analysis.threshold)
    cols[1].metric(
        "Score",
        webapp.format_signed(analysis.score),
        delta=f"{margin} vs threshold",
        help=f"The model's raw score: higher means more bona fide. Decision threshold "
        f"{webapp.format_signed(analysis.threshold)} (the dev EER point).",
    )
    llr = "n/a" if analysis.llr is None else webapp.format_signed(analysis.llr, digits=2)
    cols[2].metric(
        "Log-likelihood ratio",
        llr,
        help="Natural log of P(clip | bona fide) / P(clip | spoof); above 0 favours bona fide.",
    )
    cols[3].metric(
        "Duration",
        f"{analysis.duration_s:.1f} s",
        help=f"The model reads {analysis.window_s:g}-s windows at {analysis.sample_rate} Hz.",
    )
    st.caption(
        f"Scored by `{analysis.model_name}` at {analysis.sample_rate} Hz; the decision threshold "
        f"{webapp.format_signed(analysis.threshold)} is the model's dev EER point."
    )
    if analysis.windows:
        low = analysis.min_window
        st.caption(
            f"The clip is longer than the model's {analysis.window_s:g}-s window, so it was scored in "
            f"{len(analysis.windows)} windows and its score is the mean of their scores"
            f"{webapp.unscored_text(analysis)}. The most spoof-like window is "
            f"{webapp.format_seconds(low.start_s)} to {webapp.format_seconds(low.end_s)} s "
            f"(score {webapp.format_signed(low.score)})."
        )

    st.subheader("Waveform")
    st.pyplot(webapp.waveform_figure(analysis), clear_figure=False)
    st.subheader("Log-mel spectrogram")
    st.pyplot(webapp.spectrogram_figure(analysis), clear_figure=False)
    if analysis.windows:
        st.subheader("Score over time")
        st.pyplot(webapp.timeline_figure(analysis), clear_figure=False)
        with st.expander("Per-window scores"):
            st.dataframe(webapp.windows_table(analysis), hide_index=True)


def main() -> None:
    st.set_page_config(page_title="Spoofed speech detector", page_icon=":material/graphic_eq:", layout="wide")
    st.title("Spoofed speech detector")
    st.caption(
        "Upload a speech clip: a model trained by this project's DVC pipeline scores how likely it is "
        "bona fide (recorded from a person) rather than spoofed (TTS, voice conversion, a vocoder)."
    )

    models_dir, metrics_dir = webapp.resolve_dirs(os.environ, root=ROOT)
    choices, default = webapp.model_choices(models_dir, metrics_dir)
    if not choices:
        st.error(
            f"No trained models found in `{models_dir}`. Run `dvc repro` in the project folder to "
            f"train them, then reload this page."
        )
        st.stop()
    choice = pick_model(choices, default, models_dir)
    try:
        predictor = load_predictor(str(choice.path), (choice.path / "config.json").stat().st_mtime_ns)
    except (ValueError, OSError) as exc:
        st.error(f"The model `{choice.name}` could not be loaded: {exc}. Retrain it with `dvc repro`.")
        st.stop()

    kinds = webapp.allowed_types_text()
    # No `type=` filter: Streamlit would refuse other files with only a red mark on the file, and
    # the user deserves a sentence (webapp.check_upload writes it).
    upload = st.file_uploader(
        f"Speech clip ({kinds}; up to {webapp.MAX_UPLOAD_MB} MB and {webapp.MAX_DURATION_S:.0f} s)",
        max_upload_size=webapp.MAX_UPLOAD_MB,
        help="The file is written to a private temporary folder only while it is analysed, then deleted.",
    )
    if upload is None:
        st.info(
            f"Upload a {kinds} clip of up to {webapp.MAX_UPLOAD_MB} MB and {webapp.MAX_DURATION_S:.0f} s "
            f"to score it with `{choice.name}`."
        )
        return
    data = upload.getvalue()
    try:
        with st.spinner(f"Scoring {upload.name} with {choice.name}..."):
            analysis = webapp.analyse_upload(data, upload.name, predictor)
    except webapp.UploadError as exc:
        st.error(str(exc))
        return
    st.audio(data)
    show_result(analysis)


main()
