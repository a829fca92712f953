"""codecgan against DAC's own code: with DAC's weights, the generator's outputs, the discriminator's logits and every
loss equal DAC's in fp32; the discriminator, the losses' gradients and both training steps equal DAC's in float64;
DAC checkpoints load; a seeded codecgan model initialises exactly as a seeded DAC model.

The fixture (tests/fixtures/dac/, whose README says how it was made) was written by descript-audio-codec in its
own environment; this file imports neither `dac` nor `audiotools`. Weights reach codecgan only through
`codecgan.models.dac_checkpoint`: from the fixture's DAC-saved `.pth` (small generator) or from
`parameter_fill.py`'s rule in DAC's key order (the rest).

Every check holds on any x86 CPU: each passes with the AVX-512, AVX2 and baseline kernels of PyTorch, oneDNN, MKL
and numpy (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS, NPY_DISABLE_CPU_FEATURES), whose fp32
roundings differ. Tolerances are relative to each tensor's scale (its largest magnitude; for fingerprints its sum
of absolute values or RMS):
- fp32, RTOL: what differs is rounding: Snake divides where DAC multiplies by a reciprocal (1.8e-6 of the generator
  output's scale with the kernels that wrote the fixture), losses sum in another order (foreach norms against
  means, 1e-6), other kernels round otherwise (up to 4.3e-6). The generator's gradients through that forward get
  GRADIENT_RTOL.
- float64, FLOAT64_RTOL: where fp32 gradients amplify rounding that differs between instruction sets (the
  discriminator's, to 1e-2 of their scale), both sides compute in float64; measured 1.4e-13 at most. The
  generator's float64 gradients get SNAKE_FLOAT64_RTOL: Snake's backward differs from DAC's by more than rounding.
- Codes and initialisations exactly (the initialisation with each kernel set's own record).
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
from codecgan.losses import (
    MultiScaleMelLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from codecgan.models import CodecGenerator, CodecOutput, DACDiscriminator, STFTBandDiscriminator
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
FLOAT64_RTOL = 1e-10  # both sides in float64
SNAKE_FLOAT64_RTOL = 1e-7  # float64 generator gradients: see test_generator_step_equals_dac_in_float64

# The default (DAC-size) setup repeats the small one at full size: several seconds a test, so it runs in
# `make test-slow` and in `.ci/run`'s AVX2 pass over this file, which selects every test.
SETUPS = ["small", pytest.param("default", marks=pytest.mark.slow)]


def _load_parameter_fill():
    spec = importlib.util.spec_from_file_location("dac_parameter_fill", FIXTURE / "parameter_fill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


parameter_fill = _load_parameter_fill()


@functools.cache
def reference(setup: str) -> dict:
    return torch.load(FIXTURE / f"{setup}.pt", weights_only=True)


def assert_equal_within(actual: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL) -> None:
    """Close to `rtol` of the expected tensor's largest magnitude (elementwise relative error is meaningless
    for values that are sums of terms far larger than themselves), in the expected tensor's dtype."""
    assert actual.shape == expected.shape
    scale = float(expected.abs().max())
    torch.testing.assert_close(actual.detach().to(expected.dtype), expected, rtol=rtol, atol=rtol * max(scale, 1e-12))


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


@pytest.mark.parametrize("setup", SETUPS)
def test_generator_outputs_equal_dac(setup):
    record = reference(setup)
    generator = dac_generator(setup).train()  # quantizer_dropout 0: every codebook, as in DAC's run
    got = generator_run(generator, record["audio"])
    assert torch.equal(got["codes"], record["codes"])
    for name in ("encoded", "latents", "z", "reconstruction", "commitment_loss", "codebook_loss"):
        assert_equal_within(got[name], record[name])


def test_odd_decoder_strides_differ_from_dac_only_at_the_end():
    # Deliberate (DecoderBlock): a stride-3 block gives 3N samples here, 3N - 1 in DAC, whose decoder thus returns
    # 598 of the 600 input samples. The zero padding of the residual units then sees a real sample here where DAC
    # sees a zero, which changes the last samples only.
    record = reference("odd_stride")
    got = generator_run(dac_generator("odd_stride").train(), record["audio"])
    assert torch.equal(got["codes"], record["codes"])
    assert_equal_within(got["z"], record["z"])
    expected = record["reconstruction"]
    assert (got["reconstruction"].shape[-1], expected.shape[-1]) == (600, 598)
    # The residual units reach 3 * (1 + 3 + 9) = 39 samples at each rate: 78 output samples for those after the
    # stride-3 block, 39 for the last block's, a few for the transposed and output convolutions (107 measured).
    tail = 128
    assert_equal_within(got["reconstruction"][..., : 598 - tail], expected[..., :-tail])
    assert not torch.allclose(got["reconstruction"][..., 598 - tail : 598], expected[..., -tail:])


@pytest.mark.parametrize("setup", SETUPS)
def test_discriminator_logits_equal_dac(setup):
    """Every sub-discriminator's logits in fp32, on the input and on DAC's reconstruction. Measured: equal to the
    bit with AVX-512 kernels, 4.3e-6 of their scale with AVX2 or baseline kernels. The feature maps, whose
    fingerprints compare elements to their RMS, move by up to 9.4e-6 between instruction sets: they are compared
    in float64 (`test_discriminator_and_its_losses_equal_dac_in_float64`), and in fp32 through the feature
    matching loss (`test_training_losses_equal_dac`)."""
    record = reference(setup)
    discriminator = dac_discriminator(setup)
    with torch.no_grad():
        for label, audio in (("real", record["audio"]), ("fake", record["reconstruction"])):
            outputs = discriminator(audio)
            assert len(outputs) == len(record[f"logits_{label}"])
            for features, logits in zip(outputs, record[f"logits_{label}"]):
                assert_equal_within(features[-1], logits)


def named_grads(module: torch.nn.Module, dac_keys: list[str], rename) -> dict[str, torch.Tensor]:
    """The module's gradients under DAC's names."""
    return {key: module.get_parameter(rename(key)).grad for key in dac_keys}


def codec_gan(setup: str) -> CodecGAN:
    record = reference(setup)
    generator, discriminator = dac_generator(setup), dac_discriminator(setup)
    return CodecGAN(generator, discriminator, sample_rate=record["sample_rate"], loss_weights={"waveform": 1.0}).train()


def dac_step_inputs(record: dict, dtype: torch.dtype = torch.float32) -> tuple[dict, dict]:
    """A batch and a generator forward whose estimate is DAC's reconstruction, as a leaf, in `dtype`."""
    audio = record["audio"].to(dtype)
    batch = {"audio": audio, "length": torch.full((audio.shape[0],), audio.shape[-1])}
    estimate = record["reconstruction"].to(dtype).clone().requires_grad_()
    forward = {
        "estimate": estimate,
        "reference": audio,
        "codes": record["codes"],
        "commitment_loss": record["commitment_loss"].to(dtype),
        "codebook_loss": record["codebook_loss"].to(dtype),
    }
    return batch, forward


@pytest.mark.parametrize("setup", SETUPS)
def test_training_losses_equal_dac(setup):
    """`CodecGAN`'s discriminator and generator losses on DAC's reconstruction, term by term, in fp32 (measured:
    1.1e-6 of their value at most), and the waveform's and feature matching's gradients with respect to the
    reconstruction (2.4e-6). DAC's generator loss is 15 mel + adversarial + 2 feature matching + 0.25 commitment +
    codebook (conf/base.yml, no waveform term); the waveform L1 is compared with its weight set to 1.

    The mel and adversarial gradients are compared in float64 (`test_mel_loss_equals_dac_in_float64`,
    `test_discriminator_and_its_losses_equal_dac_in_float64`): in fp32 they move by up to 1.2e-4 and 3.2e-4 of
    their scale between instruction sets (the mel's through 1 / mel near the clamp floor, the adversarial through
    the discriminator's backward)."""
    record = reference(setup)
    losses = record["losses"]
    module = codec_gan(setup)
    batch, forward = dac_step_inputs(record)
    loss_d, _ = module.discriminator_loss(batch, forward)
    assert_equal_within(loss_d, losses["discriminator"])

    terms, _ = module.generator_loss(batch, forward, adversarial=True)
    weights = module.loss_weights
    names = {"mel": "loss_mel", "waveform": "loss_waveform", "adversarial": "loss_adv", "feature_matching": "loss_fm"}
    for name, term in names.items():
        assert_equal_within(terms[term] / weights[name], losses[name])
    for name in ("waveform", "feature_matching"):
        term = terms[names[name]] / weights[name]
        (gradient,) = torch.autograd.grad(term, forward["estimate"], retain_graph=True)
        assert_equal_within(gradient, record["reconstruction_grads"][name])
    total = sum(value for name, value in terms.items() if name != "loss_waveform")
    assert_equal_within(total, losses["generator_total"])


@pytest.mark.parametrize("setup", SETUPS)
def test_mel_loss_equals_dac_in_float64(setup):
    """The mel loss (DAC's settings) and its gradient with respect to the reconstruction, both sides in float64, to
    FLOAT64_RTOL. Measured: 1.4e-13 at most (in fp32, the gradient moves by 1.2e-4 between instruction sets)."""
    record = reference(setup)
    expected = record["float64"]
    module = codec_gan(setup).double()
    batch, forward = dac_step_inputs(record, torch.float64)
    loss = module.mel_loss(forward["estimate"], batch["audio"])
    assert_equal_within(loss, expected["losses"]["mel"], FLOAT64_RTOL)
    (gradient,) = torch.autograd.grad(loss, forward["estimate"])
    assert_equal_within(gradient, expected["reconstruction_grads"]["mel"], FLOAT64_RTOL)


def assert_discriminator_outputs_equal(outputs: list, expected: dict, label: str) -> None:
    """Every sub-discriminator's logits (in full) and feature maps (fingerprints), in float64, against DAC's on
    `label` audio."""
    assert len(outputs) == len(expected[f"logits_{label}"])
    for features, logits in zip(outputs, expected[f"logits_{label}"]):
        assert_equal_within(features[-1], logits, FLOAT64_RTOL)
    maps = {f"{k}.{j}": x for k, features in enumerate(outputs) for j, x in enumerate(features[:-1])}
    assert_fingerprints_equal(parameter_fill.fingerprints(maps), expected[f"features_{label}"], FLOAT64_RTOL)


def discriminator_grads(module: CodecGAN, record: dict) -> dict[str, torch.Tensor]:
    names = [key for key, _ in record["discriminator_keys"]]
    n_periods = len(module.discriminator.mpd.discriminators)
    return named_grads(module.discriminator, names, lambda key: discriminator_key(key, n_periods))


@pytest.mark.parametrize("setup", SETUPS)
def test_discriminator_and_its_losses_equal_dac_in_float64(setup):
    """Both sides in float64, the discriminator called as DAC calls it (real and fake apart): its outputs,
    `discriminator_loss` and its gradients of it, and the generator's adversarial and feature matching losses with
    their gradients with respect to the reconstruction, to FLOAT64_RTOL. Measured: 1.7e-14 at most (with AVX-512,
    AVX2 or baseline kernels).

    Not in fp32: these gradients sum thousands of products that cancel, through up to 8 layers, which amplifies
    rounding about 1e5-fold, and fp32 rounding differs with the instruction set: between AVX-512 and baseline
    kernels, the default-size discriminator's gradients move by 1e-2 of their scale, the small one's adversarial
    gradient with respect to its input by 3e-4. The fp32 forward and losses are checked in
    `test_discriminator_logits_equal_dac` and `test_training_losses_equal_dac`; the backward is the same code in
    either dtype."""
    record = reference(setup)
    expected = record["float64"]
    module = codec_gan(setup).double()
    batch, forward = dac_step_inputs(record, torch.float64)
    estimate, discriminator = forward["estimate"], module.discriminator
    real, fake = discriminator(batch["audio"]), discriminator(estimate)
    assert_discriminator_outputs_equal(real, expected, "real")
    assert_discriminator_outputs_equal(fake, expected, "fake")

    loss_d = discriminator_loss(real, fake)
    assert_equal_within(loss_d, expected["losses"]["discriminator"], FLOAT64_RTOL)
    loss_d.backward(retain_graph=True)
    assert_fingerprints_equal(
        parameter_fill.fingerprints(discriminator_grads(module, record)), expected["discriminator_grads"], FLOAT64_RTOL
    )

    terms = {
        "adversarial": generator_adversarial_loss(fake, module.adversarial_loss),
        "feature_matching": feature_matching_loss(real, fake),
    }
    for name, term in terms.items():
        assert_equal_within(term, expected["losses"][name], FLOAT64_RTOL)
        (gradient,) = torch.autograd.grad(term, estimate, retain_graph=True)
        assert_equal_within(gradient, expected["reconstruction_grads"][name], FLOAT64_RTOL)


@pytest.mark.parametrize("setup", SETUPS)
def test_discriminator_step_gradients_equal_dac_in_float64(setup):
    """`CodecGAN`'s discriminator step, which calls the discriminator once on [real; fake], in float64: its loss and
    gradients equal DAC's (real and fake apart) to FLOAT64_RTOL. Measured: 2.9e-14 at most: convolutions at twice
    the batch round differently."""
    record = reference(setup)
    module = codec_gan(setup).double()
    loss, _ = module.discriminator_loss(*dac_step_inputs(record, torch.float64))
    assert_equal_within(loss, record["float64"]["losses"]["discriminator"], FLOAT64_RTOL)
    loss.backward()
    grads = parameter_fill.fingerprints(discriminator_grads(module, record))
    assert_fingerprints_equal(grads, record["float64"]["discriminator_grads"], FLOAT64_RTOL)


def generator_step_gradients(setup: str, dtype: torch.dtype) -> tuple[dict[str, torch.Tensor], CodecOutput]:
    """codecgan's generator in `dtype`: its gradients (under DAC's names) of `audio . upstream + 0.25 commitment +
    codebook`, `upstream` being DAC's weighted gradient of the loss terms with respect to its reconstruction."""
    record = reference(setup)
    generator = dac_generator(setup).train().to(dtype)
    weights = DAC_LOSS_WEIGHTS
    terms = ("mel", "adversarial", "feature_matching")
    upstream = sum(weights[name] * record["reconstruction_grads"][name].to(dtype) for name in terms)
    output = generator(record["audio"].to(dtype))
    vq_loss = weights["commitment"] * output.commitment_loss + weights["codebook"] * output.codebook_loss
    ((output.audio * upstream).sum() + vq_loss).backward()
    return named_grads(generator, [key for key, _ in record["generator_keys"]], generator_key), output


def assert_generator_grads_equal(setup: str, grads: dict[str, torch.Tensor], expected: dict, rtol: float) -> None:
    if setup == "small":
        for key, values in zip(expected["names"], unpacked(expected)):
            assert_equal_within(grads[key], values, rtol)
    else:
        assert_fingerprints_equal(parameter_fill.fingerprints(grads), expected, rtol)


@pytest.mark.parametrize("setup", SETUPS)
def test_generator_step_gradients_equal_dac(setup):
    """The generator's gradients for DAC's gradient of the loss terms with respect to the reconstruction, plus the
    VQ losses': through the decoder, the straight-through quantizer and the encoder, Snake's backward included.

    The forward differs from DAC's by rounding only (Snake divides by alpha where DAC multiplies by its reciprocal,
    one op fewer; with DAC's form the whole generator is equal to the bit), at most 1.8e-6 of the output's scale;
    the backward carries that to 1.2e-5 of the gradients' scale, and other instruction sets' rounding to 3.4e-5,
    hence GRADIENT_RTOL."""
    grads, _ = generator_step_gradients(setup, torch.float32)
    assert_generator_grads_equal(setup, grads, reference(setup)["generator_grads"], GRADIENT_RTOL)


@pytest.mark.parametrize("setup", SETUPS)
def test_generator_step_equals_dac_in_float64(setup):
    """The same step with both sides in float64: codes exactly, audio to FLOAT64_RTOL (measured 3e-15).

    The gradients differ by more than rounding: Snake's backward treats its 1e-9 as 0 (`conv_blocks.snake`), a
    relative difference of 1e-9 / alpha (alpha >= 0.5 in the fixture) per Snake in the path, which moves the
    default-size generator's gradients by 2.5e-8 of their scale, the small one's by 6.4e-9 (with the exact
    derivative, 3e-14 and 6e-15); hence SNAKE_FLOAT64_RTOL, a thousandth of the fp32 check's GRADIENT_RTOL."""
    expected = reference(setup)["float64"]
    grads, output = generator_step_gradients(setup, torch.float64)
    assert torch.equal(output.codes, expected["codes"])
    assert_equal_within(output.audio, expected["reconstruction"], FLOAT64_RTOL)
    assert_generator_grads_equal(setup, grads, expected["generator_grads"], SNAKE_FLOAT64_RTOL)


def unpacked(packed: dict) -> list[torch.Tensor]:
    sizes = [int(torch.tensor(shape).prod()) for shape in packed["shapes"]]
    return [values.reshape(shape) for values, shape in zip(packed["values"].split(sizes), packed["shapes"])]


@pytest.mark.parametrize("setup", SETUPS)
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


def dac_initialisation(record: dict, network: str) -> dict:
    """DAC's seeded initialisation as torch computes it on this CPU: its float32 draws (normal_'s vectorised
    Box-Muller, uniform_'s fused multiply-adds) and weight norm's norms round differently per kernel set, so the
    fixture holds one record per `ATEN_CPU_CAPABILITY` on x86."""
    records = record[f"{network}_init"]
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in records:
        pytest.fail(f"The fixture records DAC's initialisation for {sorted(records)}, not for {capability}.")
    return records[capability]


def test_seeded_initialisation_equals_dac():
    """`torch.manual_seed(s); CodecGenerator(...)` equals `torch.manual_seed(s); DAC(...)` bit for bit: the same
    draws in the same order, Conv1d biases zeroed (DAC's init_weights), everything else PyTorch's default."""
    record = reference("small")
    torch.manual_seed(record["init_seed"])
    generator = CodecGenerator(**codec_generator_kwargs(record["generator_kwargs"]))
    expected = dac_initialisation(record, "generator")
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
        expected = dac_initialisation(record, network)
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
        assert_equal_within(discriminator(record["audio"])[-1][-1], record["logits_real"][-1])
    with pytest.raises(ValueError, match="MSDs at rates"):
        discriminator_from_dac_checkpoint({"state_dict": state_dict, "metadata": {"kwargs": {"rates": [2]}}})
