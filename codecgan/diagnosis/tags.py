"""Logged tag names shared by the callbacks (which write them), the rules and the dashboard (which read them)."""

# Logged by the LightningModules (docs/interfaces.md).
TRAIN_LOSS = "train/loss"
TRAIN_LOSS_G = "train/loss_g"
TRAIN_LOSS_D = "train/loss_d"
TRAIN_LOSS_FM = "train/loss_fm"
TRAIN_LOSS_ADV = "train/loss_adv"  # the generator's (weighted) adversarial term
TRAIN_LOSS_PREFIX = "train/loss"  # every loss term: train/loss_g, train/loss_d, train/loss_mel, ...
TRAIN_LR_G = "train/lr_g"  # the generator's and discriminator's learning rates, at logging steps
TRAIN_LR_D = "train/lr_d"
VAL_PESQ = "val/pesq"
VAL_LOSS_MEL = "val/loss_mel"  # the codec family's multi-scale log-mel loss on validation
VAL_MEL_DISTANCE = "val/mel_distance"  # the vocoder family's log-mel L1 on validation
# The validation mel measures a reconstruction-trained module logs, its family's first.
VAL_MEL_MEASURES = (VAL_LOSS_MEL, VAL_MEL_DISTANCE)

# SignalStats (validation).
VAL_SNR = "val/snr_db"
VAL_SI_SDR = "val/si_sdr"
VAL_AMPLITUDE_RATIO = "val/amplitude_ratio"
VAL_PEAK_RATIO = "val/peak_ratio"
VAL_DC_OFFSET = "val/dc_offset"
VAL_CLIPPED_FRACTION = "val/clipped_fraction"
LENGTH_MISMATCH = "diag/length_mismatch"
SILENT_REFERENCES = "diag/silent_reference_clips"
VAL_CLIPS = "diag/val_clips"

# PesqHealth and MetricDiscriminatorMonitor (enhancement family).
PESQ_NONE_RATE = "diag/pesq_none_rate"
PESQ_CLIP_FAIL_RATE = "diag/pesq_clip_fail_rate"
PESQ_FAILED_CLIPS_PREFIX = "diag/pesq_failed_clips/"  # one tag per failure kind, e.g. diag/pesq_failed_clips/timeout
METRIC_D_MAE = "diag/metric_d_mae"
METRIC_D_CORR = "diag/metric_d_corr"
METRIC_D_MAE_VAL = "diag/metric_d_mae_val"
METRIC_D_CORR_VAL = "diag/metric_d_corr_val"
# MetricGAN+ (when its loop reports them): the metric discriminator's mean absolute error on the enhanced clips and on
# the noisy inputs, and its replay buffer (items held, summed over ranks; items replayed); per logging interval, and
# per epoch with the `_epoch` suffix (the buffer at the epoch's end, the items replayed during it).
METRIC_D_ERROR_ENHANCED = "diag/metric_d_error/enhanced"
METRIC_D_ERROR_NOISY = "diag/metric_d_error/noisy"
REPLAY_BUFFER_ITEMS = "diag/replay_buffer_items"
REPLAY_ITEMS = "diag/replay_items"
EPOCH_SUFFIX = "_epoch"

# DiscriminatorHealth.
D_LOSS_CHANCE = "diag/d_loss_chance"
D_LOSS_TO_CHANCE = "diag/d_loss_to_chance"
D_MARGIN = "diag/d_margin"
D_UPDATE_RATIO = "diag/d_update_ratio"  # ‖Δθ_D‖ / ‖θ_D‖ per discriminator step; logged by the LightningModules
D_GRAD_NORM = "diag/grad_norm_d"
FM_TO_EARLY = "diag/fm_to_early"

# GradientBalance: one tag per generator loss term, e.g. diag/grad_share/loss_adv.
GRAD_SHARE_PREFIX = "diag/grad_share/"
# A term's share of the loss balancer's gradient at the generator output (CodecGAN loss_balancer): set by its weight.
BALANCER_SHARE_PREFIX = "diag/balancer_share/"
GRAD_NORM_TERM_PREFIX = "diag/grad_norm_term/"

# EvalDeterminism, RankConsistency, DivergenceMonitor.
EVAL_INPUT_CHANGED = "diag/eval_input_changed"
EVAL_INPUT_CHANGED_FRACTION = "diag/eval_input_changed_fraction"
RANK_PARAM_SPREAD_PREFIX = "diag/rank_param_spread/"
NONFINITE_LOSS_STEPS = "diag/nonfinite_loss_steps"

# CodebookUsage: one tag per quantizer q (0-based), e.g. diag/codebook_entropy/0.
CODEBOOK_ENTROPY_PREFIX = "diag/codebook_entropy/"
CODEBOOK_ENTROPY_FRACTION_PREFIX = "diag/codebook_entropy_fraction/"
DEAD_CODES_PREFIX = "diag/dead_codes/"

# DataLeakCheck (at the start of fit, when the data come from folders).
DATA_LEAK_FILES = "diag/data_leak_files"  # validation and test files that are training files
VAL_TEST_SHARED_FILES = "diag/val_test_shared_files"  # validation files that are test files

# ResumeContinuity.
RESUMED_AT_STEP = "diag/resumed_at_step"  # at each resume: the step the run resumed at (value = step)
D_STEP_RATE = "diag/d_step_rate"  # fraction of the batches since the previous logging step on which D stepped

# Alarms: diag/alarm/<CODE> is 1 while an alarm is active and 0 from the step it clears.
ALARM_PREFIX = "diag/alarm/"
# The run's diagnostic configuration (a JSON text entry written at the start of fit; `codecgan diagnose` reads it).
RUN_CONFIG = "diag/config"
