"""codecgan's MS-STFT discriminator and EMA codebooks against the `encodec` package (0.1.1), from the fixture its own
code wrote (tests/fixtures/encodec/make_fixture.py).

Tolerances: the fixture was written on a CPU with AVX-512, where codecgan matches it bit for bit. Under
`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2` the discriminator's values differ by at most 3.6e-7 and under
`default` by 1.2e-7 (logits and feature maps are O(0.1) to O(1)); the quantizer's are equal. The float checks use
`rtol=1e-5, atol=1e-6`. Codes must be equal: the fixture's vectors lie far from the decision boundaries.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from codecgan.models.ema_quantizer import EMAResidualVectorQuantizer
from codecgan.models.msstft_discriminator import MultiScaleSTFTDiscriminator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "encodec"
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture(scope="module")
def discriminator_record() -> dict:
    return torch.load(FIXTURES / "msstftd.pt", weights_only=True)


@pytest.fixture(scope="module")
def vq_record() -> dict:
    return torch.load(FIXTURES / "vq.pt", weights_only=True)


def test_msstft_discriminator_equals_encodec(discriminator_record: dict) -> None:
    config = discriminator_record["config"]
    discriminator = MultiScaleSTFTDiscriminator(
        config["n_ffts"], filters=config["filters"], negative_slope=config["negative_slope"]
    )
    discriminator.load_encodec_state_dict(discriminator_record["state_dict"])
    with torch.no_grad():
        scales = discriminator(discriminator_record["audio"])
    assert len(scales) == len(config["n_ffts"])
    for outputs, logits, feature_maps in zip(
        scales, discriminator_record["logits"], discriminator_record["feature_maps"]
    ):
        torch.testing.assert_close(outputs[-1], logits, **TOLERANCE)
        assert len(outputs) - 1 == len(feature_maps) == 5
        for feature_map, reference in zip(outputs[:-1], feature_maps):
            assert list(feature_map.shape) == reference["shape"].tolist()
            torch.testing.assert_close(feature_map.reshape(-1)[::13], reference["strided"], **TOLERANCE)
            torch.testing.assert_close(feature_map.double().sum(), reference["sum"], rtol=1e-5, atol=1e-4)
            torch.testing.assert_close(
                feature_map.double().square().sum(), reference["sum_squares"], rtol=1e-5, atol=1e-4
            )


def codecgan_state(encodec_state: dict) -> dict:
    """encodec's `layers.<i>._codebook.<buffer>` keys to `codebooks.<i>.<buffer>`."""
    return {
        key.replace("layers.", "codebooks.").replace("._codebook.", "."): value for key, value in encodec_state.items()
    }


def quantizer_of(vq_record: dict, kmeans_init: bool) -> EMAResidualVectorQuantizer:
    config = vq_record["config"]
    return EMAResidualVectorQuantizer(
        config["dim"],
        config["num_quantizers"],
        config["codebook_size"],
        decay=config["decay"],
        dead_code_threshold=config["threshold_ema_dead_code"],
        kmeans_init=kmeans_init,
        kmeans_iterations=config["kmeans_iters"],
    )


@pytest.mark.parametrize("variant", ["uniform", "kmeans"])
def test_ema_codebooks_equal_encodec_step_by_step(vq_record: dict, variant: str) -> None:
    """Each training step from encodec's state before it: outputs, codes, commitment loss and every buffer equal
    encodec's, but for the codes restarted in that step, whose count is encodec's dead-code count and whose vectors
    are vectors of the batch (encodec's restart is overwritten in the same step, see ema_quantizer.py)."""
    record, threshold = vq_record[variant], vq_record["config"]["threshold_ema_dead_code"]
    decay = vq_record["config"]["decay"]
    quantizer = quantizer_of(vq_record, kmeans_init=variant == "kmeans").train()
    state = codecgan_state(record["initial_state"])
    restarted_total = 0
    for step in record["steps"]:
        quantizer.load_state_dict(state)
        torch.manual_seed(step["seed"])
        output = quantizer(step["input"])
        after = codecgan_state(step["state_after"])
        torch.testing.assert_close(output.z_q, step["quantized"], **TOLERANCE)
        assert torch.equal(output.codes, step["codes"].transpose(0, 1))
        torch.testing.assert_close(output.commitment_loss, step["losses"].sum(), **TOLERANCE)
        assert output.codebook_loss.item() == 0.0
        ours = quantizer.state_dict()
        for index in range(quantizer.n_codebooks):
            prefix = f"codebooks.{index}."
            cluster_size = state[prefix + "cluster_size"]
            if not state[prefix + "inited"].item():  # k-means ran in this step: its counts, from encodec's EMA
                counts = torch.bincount(step["codes"][index].reshape(-1), minlength=cluster_size.numel())
                cluster_size = ((after[prefix + "cluster_size"] - (1 - decay) * counts) / decay).round()
            expired = cluster_size < threshold
            assert quantizer.codebooks[index].dead_code_restarts.item() == expired.sum().item()
            restarted_total += int(expired.sum())
            torch.testing.assert_close(ours[prefix + "cluster_size"], after[prefix + "cluster_size"], **TOLERANCE)
            torch.testing.assert_close(ours[prefix + "inited"], after[prefix + "inited"])
            for name in ("embed", "embed_avg"):
                torch.testing.assert_close(ours[prefix + name][~expired], after[prefix + name][~expired], **TOLERANCE)
            if index == 0:  # the first codebook's batch is the input itself
                batch = step["input"].transpose(1, 2).reshape(-1, step["input"].shape[1])
                for row in ours[prefix + "embed"][expired]:
                    assert (batch == row).all(1).any()
        state = codecgan_state(step["state_after"])
    assert restarted_total > 0  # the fixture exercises restarts
    quantizer.load_state_dict(state)
    quantizer.eval()
    with torch.no_grad():
        output = quantizer(record["eval"]["input"])
    torch.testing.assert_close(output.z_q, record["eval"]["quantized"], **TOLERANCE)
    assert torch.equal(output.codes, record["eval"]["codes"].transpose(0, 1))
    assert torch.equal(quantizer.state_dict()["codebooks.0.embed"], state["codebooks.0.embed"])  # eval never updates


def test_encodec_restarts_have_no_effect(vq_record: dict) -> None:
    """The fixture's record that encodec 0.1.1's dead-code restarts leave its state unchanged (the reason
    codecgan's restart writes `embed_avg` too)."""
    assert vq_record["uniform"]["restart_changes_state"] is False
    assert vq_record["kmeans"]["restart_changes_state"] is False
