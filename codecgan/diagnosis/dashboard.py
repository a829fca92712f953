"""The TensorBoard custom-scalars layout "codecgan diagnostics".

Charts are shown side by side in list order, so the list pairs the two curves whose disagreement is the
finding: training loss next to validation quality, the metric discriminator next to the PESQ it should predict, and
so on. Entries are regular expressions over scalar tags. The vocoder family gets its own layout: its quality is the
validation mel distance, and it logs no PESQ, metric discriminator or codebook.
"""

from __future__ import annotations

from codecgan.diagnosis import tags

LAYOUT_TITLE = "codecgan diagnostics"


def _exact(tag: str) -> str:
    return "^" + tag.replace(".", r"\.") + "(_epoch|_step)?$"


def diagnostics_layout(family: str | None = None) -> dict[str, dict[str, list]]:
    """The layout for `SummaryWriter.add_custom_scalars`: {"codecgan diagnostics": {chart: ["Multiline", [regexes]]}}.

    `family`: the model family (`callbacks.run_config.model_family`); "vocoder" gets `vocoder_charts()`, any other
    the charts of the codec and enhancement families. Charts are listed in pairs that TensorBoard shows side by side.
    """
    charts = vocoder_charts() if family == "vocoder" else codec_and_enhancement_charts()
    return {LAYOUT_TITLE: {title: ["Multiline", regexes] for title, regexes in charts.items()}}


def vocoder_charts() -> dict[str, list[str]]:
    """A vocoder's charts: its training losses next to its validation mel distance, its discriminators' loss next to
    their chance value and update size, feature matching next to the real-fake margin, each term's gradient share
    next to its weighted loss, the output level next to SNR (which a phase-free vocoder does not aim at), and alarms."""
    return {
        "training loss": [_exact(tags.TRAIN_LOSS_G)],
        "validation mel distance (log-mel L1)": [_exact(tags.VAL_MEL_DISTANCE)],
        "generator terms, weighted: mel, adversarial, feature matching": [
            _exact(tags.TRAIN_LOSS_PREFIX + "_mel"),
            _exact(tags.TRAIN_LOSS_ADV),
            _exact(tags.TRAIN_LOSS_FM),
        ],
        "gradient share per generator loss term": ["^" + tags.GRAD_SHARE_PREFIX],
        "discriminator loss (MPD and MRD, weighted) vs its chance value": [
            _exact(tags.TRAIN_LOSS_D),
            _exact(tags.D_LOSS_CHANCE),
        ],
        "discriminator update per step, ‖Δθ‖ / ‖θ‖": [_exact(tags.D_UPDATE_RATIO)],
        "feature matching and real-fake margin": [
            _exact(tags.TRAIN_LOSS_FM),
            _exact(tags.FM_TO_EARLY),
            _exact(tags.D_MARGIN),
        ],
        "discriminator outputs on real and generated audio": [_exact("train/d_real"), _exact("train/d_fake")],
        "amplitude and peak ratio, DC offset": [
            _exact(tags.VAL_AMPLITUDE_RATIO),
            _exact(tags.VAL_PEAK_RATIO),
            _exact(tags.VAL_DC_OFFSET),
        ],
        "SNR and SI-SDR (dB; not a vocoder's aim)": [_exact(tags.VAL_SNR), _exact(tags.VAL_SI_SDR)],
        "learning rates": [_exact("train/lr_g"), _exact("train/lr_d")],
        "alarms (1 while active, 0 once cleared)": ["^" + tags.ALARM_PREFIX],
    }


def codec_and_enhancement_charts() -> dict[str, list[str]]:
    """The codec's and the enhancer's charts."""
    return {
        "training loss": [_exact(tags.TRAIN_LOSS_G)],
        "validation quality: PESQ, SNR, SI-SDR": [_exact(tags.VAL_PESQ), _exact(tags.VAL_SNR), _exact(tags.VAL_SI_SDR)],
        "metric discriminator vs true PESQ: error and correlation": [
            _exact(tags.METRIC_D_MAE),
            _exact(tags.METRIC_D_CORR),
            _exact(tags.METRIC_D_MAE_VAL),
            _exact(tags.METRIC_D_CORR_VAL),
        ],
        "PESQ-None rate: batches dropped, clips failed": [
            _exact(tags.PESQ_NONE_RATE),
            _exact(tags.PESQ_CLIP_FAIL_RATE),
        ],
        "discriminator loss vs its chance value": [_exact(tags.TRAIN_LOSS_D), _exact(tags.D_LOSS_CHANCE)],
        "discriminator update per step, ‖Δθ‖ / ‖θ‖": [_exact(tags.D_UPDATE_RATIO)],
        "feature matching and real-fake margin": [
            _exact(tags.TRAIN_LOSS_FM),
            _exact(tags.FM_TO_EARLY),
            _exact(tags.D_MARGIN),
        ],
        "SNR and SI-SDR (dB)": [_exact(tags.VAL_SNR), _exact(tags.VAL_SI_SDR)],
        "amplitude and peak ratio, DC offset": [
            _exact(tags.VAL_AMPLITUDE_RATIO),
            _exact(tags.VAL_PEAK_RATIO),
            _exact(tags.VAL_DC_OFFSET),
        ],
        "gradient share per generator loss term": ["^" + tags.GRAD_SHARE_PREFIX],
        "codebook entropy, fraction of log2 K": ["^" + tags.CODEBOOK_ENTROPY_FRACTION_PREFIX],
        "alarms (1 while active, 0 once cleared)": ["^" + tags.ALARM_PREFIX],
    }
