"""Generators and discriminators; every discriminator maps [B, 1, T] to list[list[Tensor]]."""

from codecgan.models.cmgan_generator import (
    CMGANGenerator,
    CompressedSpectrum,
    EnhancementOutput,
    compressed_spectrum,
    decompressed_audio,
)
from codecgan.models.conformer import ConformerBlock, TwoStageConformer
from codecgan.models.conv_blocks import (
    Snake1d,
    weight_norm_conv1d,
    weight_norm_conv2d,
    weight_norm_conv_transpose1d,
)
from codecgan.models.dac_checkpoint import (
    DACCheckpoint,
    discriminator_from_dac_checkpoint,
    generator_from_dac_checkpoint,
    load_dac_discriminator_weights,
    load_dac_generator_weights,
    read_dac_checkpoint,
)
from codecgan.models.dac_codec import CodecGenerator, CodecOutput, Decoder, Encoder
from codecgan.models.discriminator_set import DiscriminatorSet
from codecgan.models.discriminators import (
    DACDiscriminator,
    MultiPeriodDiscriminator,
    MultiResolutionSTFTDiscriminator,
    PeriodDiscriminator,
    STFTBandDiscriminator,
    remove_dc_and_normalize_peak,
)
from codecgan.models.ema_quantizer import EMACodebook, EMAResidualVectorQuantizer
from codecgan.models.learnable_sigmoid import LearnableSigmoid
from codecgan.models.metric_discriminator import MetricDiscriminator
from codecgan.models.metricgan_plus import MetricGANPlusDiscriminator, MetricGANPlusGenerator
from codecgan.models.metricgan_plus_enhancer import MaskedFeaturesOutput, MetricGANPlusEnhancerNet
from codecgan.models.mpsenet_generator import MagnitudePhaseOutput, MPSENetGenerator
from codecgan.models.msstft_discriminator import MultiScaleSTFTDiscriminator, STFTScaleDiscriminator
from codecgan.models.multiscale_discriminator import MultiScaleDiscriminator, ScaleDiscriminator
from codecgan.models.residual_vq import (
    ResidualQuantizerOutput,
    ResidualVectorQuantizer,
    VectorQuantizer,
    VectorQuantizerOutput,
)

__all__ = [
    "CMGANGenerator",
    "CodecGenerator",
    "CodecOutput",
    "CompressedSpectrum",
    "ConformerBlock",
    "DACCheckpoint",
    "DACDiscriminator",
    "Decoder",
    "EMACodebook",
    "EMAResidualVectorQuantizer",
    "DiscriminatorSet",
    "Encoder",
    "EnhancementOutput",
    "LearnableSigmoid",
    "MPSENetGenerator",
    "MagnitudePhaseOutput",
    "MetricDiscriminator",
    "MetricGANPlusDiscriminator",
    "MetricGANPlusGenerator",
    "MetricGANPlusEnhancerNet",
    "MaskedFeaturesOutput",
    "MultiPeriodDiscriminator",
    "MultiResolutionSTFTDiscriminator",
    "MultiScaleDiscriminator",
    "MultiScaleSTFTDiscriminator",
    "PeriodDiscriminator",
    "ResidualQuantizerOutput",
    "ResidualVectorQuantizer",
    "STFTBandDiscriminator",
    "STFTScaleDiscriminator",
    "ScaleDiscriminator",
    "Snake1d",
    "TwoStageConformer",
    "VectorQuantizer",
    "VectorQuantizerOutput",
    "compressed_spectrum",
    "decompressed_audio",
    "discriminator_from_dac_checkpoint",
    "generator_from_dac_checkpoint",
    "load_dac_discriminator_weights",
    "load_dac_generator_weights",
    "read_dac_checkpoint",
    "remove_dc_and_normalize_peak",
    "weight_norm_conv1d",
    "weight_norm_conv2d",
    "weight_norm_conv_transpose1d",
]
