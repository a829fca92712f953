"""codecgan against DAC's own code: with DAC's weights, generator, discriminator, losses and gradients equal DAC's
in fp32; DAC checkpoints load; a seeded codecgan model initialises exactly as a seeded DAC model.

The fixture (tests/fixtures/dac/, whose README says how it was made) was written by descript-audio-codec in its
own environment; this file imports neither `dac` nor `audiotools`. Weights reach codecgan only through
`codecgan.models.dac_checkpoint`: from the fixture's DAC-saved `.pth` (small generator) or from
`parameter_fill.py`'s rule in DAC's key order (the rest).

Tolerances: rtol 1e-5 relative to each tensor's scale (its largest magnitude; for fingerprints its sum of
absolute values or RMS), codes and initialisations exactly. On the machine that wrote the fixture the discriminator
and its loss gradients are equal to the bit; what differs is rounding: Snake divides where DAC multiplies by a
reciprocal (1.4e-6 of the generator output's scale at most), losses sum in another order (foreach norms against
means, 2e-6). Gradients through those forwards get GRADIENT_RTOL (see the tests that use it).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import re
from pathlib import Path

import pytest
import torch

from codecgan import CodecGAN
from codecgan.codec_module import DAC_LOSS_WEIGHTS
from codecgan.losses import MultiScaleMelLoss, discriminator_loss
from codecgan.models import CodecGenerator, DACDiscriminator, STFTBandDiscriminator
from codecgan.models.dac_checkpoint import (
    codec_generator_kwargs,
    discriminator_from_dac_checkpoint,
    discriminator_key,
    generator_from_dac_checkpoint,
    generator_key,
    load_dac_generator_weights,
    read_dac_checkpoint,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dac"
RTOL = 1e-5
GRADIENT_RTOL = 1e-4  # gradients through a forward that differs by rounding: see the tests that use it


def _load_parameter_fill():
    spec = importlib.util.spec_from_file_location("dac_parameter_fill", FIXTURE / "parameter_fill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


parameter_fill = _load_parameter_fill()


@functools.cache
def reference(setup: str) -> dict:
    return torch.load(FIXTURE / f"{setup}.pt", weights_only=True)


def assert_equal_fp32(actual: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL) -> None:
    """Close to `rtol` of the expected tensor's largest magnitude (elementwise relative error is meaningless
    for values that are sums of terms far larger than themselves)."""
    assert actual.shape == expected.shape
    scale = float(expected.abs().max())
    torch.testing.assert_close(actual.detach().float(), expected, rtol=rtol, atol=rtol * max(scale, 1e-12))


def fingerprint_errors(actual: dict, expected: dict) -> dict[str, float]:
    """Per tensor of two fingerprint tables (`parameter_fill.fingerprints`), its difference relative to its scale:
    the largest of |Δ sum| / Σ|x|, |Δ Σ|x|| / Σ|x|, |Δ Σx²| / 2Σx² and max |Δ first/last elements| / RMS."""
    assert actual["names"] == expected["names"]
    assert actual["shapes"] == expected["shapes"]
    got, want = actual["sums"], expected["sums"]
    tiny = 1e-300
    sums = torch.stack(
        [
            (got[:, 0] - want[:, 0]).abs() / (want[:, 1] + tiny),
            (got[:, 1] - want[:, 1]).abs() / (want[:, 1] + tiny),
            (got[:, 2] - want[:, 2]).abs() / (2 * want[:, 2] + tiny),
        ]
    ).amax(dim=0)
    numel = torch.tensor([max(1, math.prod(shape)) for shape in expected["shapes"]], dtype=torch.float64)
    rms = (want[:, 2] / numel).sqrt()
    edges = (actual["edges"].double() - expected["edges"].double()).abs().nan_to_num(0.0).amax(dim=1)
    # A tensor that is zero on both sides has no scale: any difference counts in full.
    errors = torch.maximum(sums, edges / (rms + tiny))
    return dict(zip(expected["names"], errors.tolist()))


def assert_fingerprints_equal(actual: dict, expected: dict, rtol: float = RTOL) -> None:
    errors = fingerprint_errors(actual, expected)
    worst = sorted(errors.items(), key=lambda item: -item[1])[:5]
    assert worst[0][1] <= rtol, f"relative differences above {rtol}: " + ", ".join(
        f"{name} {error:.1e}" for name, error in worst if error > rtol
    )


def filled(record: dict, keys: str, network: str) -> dict[str, torch.Tensor]:
    fill = record["fill"][network]
    return parameter_fill.filled_state_dict(record[keys], fill["seed"], fill["gain"])


def dac_generator(setup: str) -> CodecGenerator:
    """codecgan's generator holding the setup's DAC weights (the small one read from DAC's own .pth)."""
    record = reference(setup)
    if setup == "small":
        return CodecGenerator.from_dac_checkpoint(FIXTURE / "small_generator.pth")
    generator = CodecGenerator(**codec_generator_kwargs(record["generator_kwargs"]))
    load_dac_generator_weights(generator, filled(record, "generator_keys", "generator"))
    return generator


def dac_discriminator(setup: str) -> DACDiscriminator:
    """codecgan's discriminator from a DAC-format checkpoint of the setup's weights, with the metadata DAC's save
    writes, which holds `Discriminator`'s defaults whatever it was built with: the small one needs its arguments."""
    record = reference(setup)
    kwargs = record["discriminator_kwargs"]
    overrides = {"periods": kwargs["periods"], "window_lengths": kwargs["fft_sizes"]} if kwargs else {}
    state_dict = filled(record, "discriminator_keys", "discriminator")
    checkpoint = {"state_dict": state_dict, "metadata": record["discriminator_metadata"]}
    return discriminator_from_dac_checkpoint(checkpoint, **overrides)


def generator_run(generator: CodecGenerator, audio: torch.Tensor) -> dict[str, torch.Tensor]:
    """The generator's output plus, by hooks, its encoder output, each codebook's projected latent and the
    decoder's input: what DAC returns as `latents` and `z`."""
    seen: dict[str, list[torch.Tensor]] = {"encoded": [], "latents": [], "z": []}
    hooks = [
        generator.encoder.register_forward_hook(lambda m, i, o: seen["encoded"].append(o)),
        generator.decoder.register_forward_pre_hook(lambda m, i: seen["z"].append(i[0])),
        *(
            quantizer.in_proj.register_forward_hook(lambda m, i, o: seen["latents"].append(o))
            for quantizer in generator.quantizer.quantizers
        ),
    ]
    try:
        output = generator(audio)
    finally:
        for hook in hooks:
            hook.remove()
    return {
        "reconstruction": output.audio,
        "codes": output.codes,
        "commitment_loss": output.commitment_loss,
        "codebook_loss": output.codebook_loss,
        "encoded": seen["encoded"][0],
        "latents": torch.cat(seen["latents"], dim=1),
        "z": seen["z"][0],
    }


@pytest.mark.parametrize("setup", ["small", "default"])
def test_generator_outputs_equal_dac(setup):
    record = reference(setup)
    generator = dac_generator(setup).train()  # quantizer_dropout 0: every codebook, as in DAC's run
    got = generator_run(generator, record["audio"])
    assert torch.equal(got["codes"], record["codes"])
    for name in ("encoded", "latents", "z", "reconstruction", "commitment_loss", "codebook_loss"):
        assert_equal_fp32(got[name], record[name])


def test_odd_decoder_strides_differ_from_dac_only_at_the_end():
    # Deliberate (DecoderBlock): a stride-3 block gives 3N samples here, 3N - 1 in DAC, whose decoder thus returns
    # 598 of the 600 input samples. The zero padding of the residual units then sees a real sample here where DAC
    # sees a zero, which changes the last samples only.
    record = reference("odd_stride")
    got = generator_run(dac_generator("odd_stride").train(), record["audio"])
    assert torch.equal(got["codes"], record["codes"])
    assert_equal_fp32(got["z"], record["z"])
    expected = record["reconstruction"]
    assert (got["reconstruction"].shape[-1], expected.shape[-1]) == (600, 598)
    # The residual units reach 3 * (1 + 3 + 9) = 39 samples at each rate: 78 output samples for those after the
    # stride-3 block, 39 for the last block's, a few for the transposed and output convolutions (107 measured).
    tail = 128
    assert_equal_fp32(got["reconstruction"][..., : 598 - tail], expected[..., :-tail])
    assert not torch.allclose(got["reconstruction"][..., 598 - tail : 598], expected[..., -tail:])


@pytest.mark.parametrize("setup", ["small", "default"])
def test_discriminator_outputs_equal_dac(setup):
    record = reference(setup)
    discriminator = dac_discriminator(setup)
    with torch.no_grad():
        for label, audio in (("real", record["audio"]), ("fake", record["reconstruction"])):
            outputs = discriminator(audio)
            assert len(outputs) == len(record[f"logits_{label}"])
            for features, logits in zip(outputs, record[f"logits_{label}"]):
                assert_equal_fp32(features[-1], logits)
            maps = {f"{k}.{j}": x for k, features in enumerate(outputs) for j, x in enumerate(features[:-1])}
            assert_fingerprints_equal(parameter_fill.fingerprints(maps), record[f"features_{label}"])


def named_grads(module: torch.nn.Module, dac_keys: list[str], rename) -> dict[str, torch.Tensor]:
    """The module's gradients under DAC's names."""
    return {key: module.get_parameter(rename(key)).grad for key in dac_keys}


def codec_gan(setup: str) -> CodecGAN:
    record = reference(setup)
    generator, discriminator = dac_generator(setup), dac_discriminator(setup)
    return CodecGAN(generator, discriminator, sample_rate=record["sample_rate"], loss_weights={"waveform": 1.0}).train()


def dac_step_inputs(record: dict) -> tuple[dict, dict]:
    """A batch and a generator forward whose estimate is DAC's reconstruction, as a leaf."""
    audio = record["audio"]
    batch = {"audio": audio, "length": torch.full((audio.shape[0],), audio.shape[-1])}
    estimate = record["reconstruction"].clone().requires_grad_()
    forward = {
        "estimate": estimate,
        "reference": audio,
        "codes": record["codes"],
        "commitment_loss": record["commitment_loss"],
        "codebook_loss": record["codebook_loss"],
    }
    return batch, forward


@pytest.mark.parametrize("setup", ["small", "default"])
def test_training_losses_equal_dac(setup):
    """`CodecGAN`'s discriminator and generator losses on DAC's reconstruction, term by term, and their gradients
    with respect to the reconstruction. DAC's generator loss is 15 mel + adversarial + 2 feature matching + 0.25
    commitment + codebook (conf/base.yml, no waveform term); the waveform L1 is compared with its weight set to 1."""
    record = reference(setup)
    losses = record["losses"]
    module = codec_gan(setup)
    batch, forward = dac_step_inputs(record)
    loss_d, _ = module.discriminator_loss(batch, forward)
    assert_equal_fp32(loss_d, losses["discriminator"])

    terms, _ = module.generator_loss(batch, forward, adversarial=True)
    weights = module.loss_weights
    names = {"mel": "loss_mel", "waveform": "loss_waveform", "adversarial": "loss_adv", "feature_matching": "loss_fm"}
    for name, term in names.items():
        assert_equal_fp32(terms[term] / weights[name], losses[name])
        (gradient,) = torch.autograd.grad(terms[term] / weights[name], forward["estimate"], retain_graph=True)
        assert_equal_fp32(gradient, record["reconstruction_grads"][name])
    total = sum(value for name, value in terms.items() if name != "loss_waveform")
    assert_equal_fp32(total, losses["generator_total"])


@pytest.mark.parametrize("setup", ["small", "default"])
@pytest.mark.parametrize("batched", [False, True], ids=["calls_as_dac", "calls_as_codecgan_step"])
def test_discriminator_step_gradients_equal_dac(setup, batched):
    """The discriminator's gradients of its loss on real audio and DAC's reconstruction. Called as DAC calls it
    (real and fake apart), codecgan's discriminator and `discriminator_loss` give DAC's gradients to rounding (to
    the bit on the machine that wrote the fixture). `CodecGAN`'s step calls it once on [real; fake]: convolutions
    at twice the batch round differently, and gains and biases, whose gradients sum thousands of products that
    cancel, then move by up to 3e-5 of their scale."""
    record = reference(setup)
    module = codec_gan(setup)
    batch, forward = dac_step_inputs(record)
    if batched:
        loss = module.discriminator_loss(batch, forward)[0]
    else:
        discriminator = module.discriminator
        loss = discriminator_loss(discriminator(record["audio"]), discriminator(record["reconstruction"]))
    loss.backward()
    names = [key for key, _ in record["discriminator_keys"]]
    n_periods = len(module.discriminator.mpd.discriminators)
    grads = named_grads(module.discriminator, names, lambda key: discriminator_key(key, n_periods))
    rtol = GRADIENT_RTOL if batched else RTOL
    assert_fingerprints_equal(parameter_fill.fingerprints(grads), record["discriminator_grads"], rtol)


@pytest.mark.parametrize("setup", ["small", "default"])
def test_generator_step_gradients_equal_dac(setup):
    """The generator's gradients for DAC's gradient of the loss terms with respect to the reconstruction, plus the
    VQ losses': through the decoder, the straight-through quantizer and the encoder, Snake's backward included.

    The forward differs from DAC's by rounding only (Snake divides by alpha where DAC multiplies by its reciprocal,
    one op fewer; with DAC's form the whole generator is equal to the bit), at most 1.4e-6 of the output's scale;
    the backward carries that to about 1e-5 of the gradients' scale, hence GRADIENT_RTOL."""
    record = reference(setup)
    generator = dac_generator(setup).train()
    weights = DAC_LOSS_WEIGHTS
    terms = ("mel", "adversarial", "feature_matching")
    upstream = sum(weights[name] * record["reconstruction_grads"][name] for name in terms)
    output = generator(record["audio"])
    vq_loss = weights["commitment"] * output.commitment_loss + weights["codebook"] * output.codebook_loss
    ((output.audio * upstream).sum() + vq_loss).backward()
    grads = named_grads(generator, [key for key, _ in record["generator_keys"]], generator_key)
    expected = record["generator_grads"]
    if setup == "small":
        for key, values in zip(expected["names"], unpacked(expected)):
            assert_equal_fp32(grads[key], values, GRADIENT_RTOL)
    else:
        assert_fingerprints_equal(parameter_fill.fingerprints(grads), expected, GRADIENT_RTOL)


def unpacked(packed: dict) -> list[torch.Tensor]:
    sizes = [int(torch.tensor(shape).prod()) for shape in packed["shapes"]]
    return [values.reshape(shape) for values, shape in zip(packed["values"].split(sizes), packed["shapes"])]


@pytest.mark.parametrize("setup", ["small", "default"])
def test_mel_filters_and_hann_windows_equal_dacs_to_the_bit(setup):
    """librosa's Slaney filters and scipy's periodic Hann windows, which DAC uses, rounded once from float64."""
    record = reference(setup)
    mel_loss = MultiScaleMelLoss(record["sample_rate"])
    filters = {str(spectrogram.n_fft): spectrogram.mel_scale.fb.T for spectrogram in mel_loss.spectrograms}
    assert_fingerprints_equal(parameter_fill.fingerprints(filters), record["mel_filters"], rtol=0)
    windows = {str(spectrogram.n_fft): spectrogram.spectrogram.window for spectrogram in mel_loss.spectrograms}
    names = record["hann_windows"]["names"]
    windows |= {name: STFTBandDiscriminator(int(name), channels=1).window for name in names}
    ordered = {name: windows[name] for name in names}
    assert_fingerprints_equal(parameter_fill.fingerprints(ordered), record["hann_windows"], rtol=0)


def test_seeded_initialisation_equals_dac():
    """`torch.manual_seed(s); CodecGenerator(...)` equals `torch.manual_seed(s); DAC(...)` bit for bit: the same
    draws in the same order, Conv1d biases zeroed (DAC's init_weights), everything else PyTorch's default."""
    record = reference("small")
    torch.manual_seed(record["init_seed"])
    generator = CodecGenerator(**codec_generator_kwargs(record["generator_kwargs"]))
    expected = record["generator_init"]
    for key, value in zip(expected["names"], unpacked(expected)):
        assert torch.equal(generator.get_parameter(generator_key(key)), value), key
    # DAC zeroes the biases of its Conv1d layers only: its transposed convolutions keep PyTorch's init.
    transposed = generator.decoder[1][1]
    assert isinstance(transposed, torch.nn.ConvTranspose1d) and transposed.bias.abs().sum() > 0
    assert generator.encoder[0].bias.abs().sum() == 0


def test_seeded_default_size_initialisation_equals_dac():
    record = reference("default")
    for network, build, rename in (
        ("generator", CodecGenerator, generator_key),
        ("discriminator", DACDiscriminator, lambda key: discriminator_key(key, 5)),
    ):
        torch.manual_seed(record["init_seed"])
        module = build()
        expected = record[f"{network}_init"]
        values = {key: module.get_parameter(rename(key)) for key in expected["names"]}
        assert_fingerprints_equal(parameter_fill.fingerprints(values), expected, rtol=0)


def test_dac_checkpoint_builds_the_generator_it_describes():
    checkpoint = read_dac_checkpoint(FIXTURE / "small_generator.pth")
    assert checkpoint.kwargs["encoder_rates"] == [2, 4] and checkpoint.kwargs["sample_rate"] == 16000
    generator = CodecGenerator.from_dac_checkpoint(FIXTURE / "small_generator.pth")
    assert (generator.hop_length, generator.n_codebooks, generator.codebook_size) == (8, 4, 64)
    # A bare state dict (no metadata) loads the same weights into a generator built by hand.
    built = generator_from_dac_checkpoint(checkpoint.state_dict, **codec_generator_kwargs(checkpoint.kwargs))
    for (name, got), want in zip(built.state_dict().items(), generator.state_dict().values()):
        assert torch.equal(got, want), name


def test_a_checkpoint_that_does_not_fit_names_the_keys(tmp_path):
    checkpoint = read_dac_checkpoint(FIXTURE / "small_generator.pth")
    state_dict = dict(checkpoint.state_dict)
    del state_dict["encoder.block.0.weight_g"]
    state_dict["encoder.block.9.weight_v"] = torch.zeros(1)
    state_dict["decoder.model.0.bias"] = torch.zeros(3)
    path = tmp_path / "broken.pth"
    torch.save({"state_dict": state_dict, "metadata": {"kwargs": checkpoint.kwargs}}, path)
    with pytest.raises(ValueError) as error:
        CodecGenerator.from_dac_checkpoint(path)
    message = str(error.value)
    assert "encoder.block.9.weight_v (as encoder.9.parametrizations.weight.original1)" in message
    assert "encoder.0.parametrizations.weight.original0" in message
    assert "decoder.0.bias: checkpoint (3,), model (16,)" in message
    shapes = "quantizer.quantizers.0.codebook.weight: checkpoint (64, 4), model (32, 4)"
    with pytest.raises(ValueError, match=re.escape(shapes)):
        CodecGenerator.from_dac_checkpoint(FIXTURE / "small_generator.pth", codebook_size=32)


def test_discriminator_checkpoint_needs_the_arguments_dac_does_not_record(tmp_path):
    record = reference("small")
    path = tmp_path / "weights.pth"
    state_dict = filled(record, "discriminator_keys", "discriminator")
    torch.save({"state_dict": state_dict, "metadata": record["discriminator_metadata"]}, path)
    # The metadata says 5 periods and 3 windows; the weights hold 2 and 2.
    with pytest.raises(ValueError, match="model parameters are not in the checkpoint: mpd.discriminators.2"):
        discriminator_from_dac_checkpoint(path)
    discriminator = discriminator_from_dac_checkpoint(path, periods=[2, 3], window_lengths=[512, 256])
    with torch.no_grad():
        assert_equal_fp32(discriminator(record["audio"])[-1][-1], record["logits_real"][-1])
    with pytest.raises(ValueError, match="MSDs at rates"):
        discriminator_from_dac_checkpoint({"state_dict": state_dict, "metadata": {"kwargs": {"rates": [2]}}})
