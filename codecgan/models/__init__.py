"""Generators and discriminators; every discriminator maps [B, 1, T] to list[list[Tensor]]."""

from codecgan.models.anti_alias import AntiAliasedActivation
from codecgan.models.bigvgan_discriminators import (
    BigVGANBandDiscriminator,
    BigVGANMultiBandDiscriminator,
    BigVGANMultiResolutionDiscriminator,
    HiFiGANMultiPeriodDiscriminator,
    HiFiGANPeriodDiscriminator,
    ResolutionDiscriminator,
)
from codecgan.models.bigvgan_generator import AMPBlock, BigVGANGenerator, Snake, SnakeBeta, from_bigvgan_state_dict
from codecgan.models.cmgan_generator import (
    CMGANGenerator,
    CompressedSpectrum,
    EnhancementOutput,
    compressed_spectrum,
    decompressed_audio,
)
from codecgan.models.conformer import ConformerBlock, TwoStageConformer
from codecgan.models.constant_q import ConstantQTransform
from codecgan.models.conv_blocks import (
    Snake1d,
    weight_norm_conv1d,
    weight_norm_conv2d,
    weight_norm_conv_transpose1d,
)
from codecgan.models.cqt_discriminator import CQTDiscriminator, MultiScaleSubbandCQTDiscriminator
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
from codecgan.models.hifigan_discriminators import HiFiGANMultiScaleDiscriminator, HiFiGANScaleDiscriminator
from codecgan.models.hifigan_generator import (
    HIFIGAN_V1,
    HIFIGAN_V2,
    HIFIGAN_V3,
    HiFiGANGenerator,
    MultiReceptiveFieldBlock,
    from_hifigan_state_dict,
)
from codecgan.models.hifigan_mel import HiFiGANLogMel
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
from codecgan.models.vocos_checkpoint import (
    from_vocos_discriminator_state_dict,
    from_vocos_state_dict,
    vocos_mel_state_dict,
)
from codecgan.models.vocos_generator import ConvNeXtBlock, VocosBackbone, VocosGenerator
from codecgan.models.vocos_istft import ISTFTHead
from codecgan.models.vocos_mel import VocosMelSpectrogram
from codecgan.models.vocos_mpd import VocosMultiPeriodDiscriminator, VocosPeriodDiscriminator
from codecgan.models.vocos_mrd import VocosMultiResolutionDiscriminator, VocosSTFTBandDiscriminator

__all__ = [
    "AMPBlock",
    "AntiAliasedActivation",
    "BigVGANBandDiscriminator",
    "BigVGANGenerator",
    "BigVGANMultiBandDiscriminator",
    "BigVGANMultiResolutionDiscriminator",
    "CMGANGenerator",
    "CQTDiscriminator",
    "CodecGenerator",
    "CodecOutput",
    "CompressedSpectrum",
    "ConformerBlock",
    "ConvNeXtBlock",
    "ConstantQTransform",
    "DACCheckpoint",
    "DACDiscriminator",
    "Decoder",
    "EMACodebook",
    "EMAResidualVectorQuantizer",
    "DiscriminatorSet",
    "Encoder",
    "EnhancementOutput",
    "ISTFTHead",
    "HIFIGAN_V1",
    "HIFIGAN_V2",
    "HIFIGAN_V3",
    "HiFiGANGenerator",
    "HiFiGANLogMel",
    "HiFiGANMultiPeriodDiscriminator",
    "HiFiGANMultiScaleDiscriminator",
    "HiFiGANPeriodDiscriminator",
    "HiFiGANScaleDiscriminator",
    "LearnableSigmoid",
    "MPSENetGenerator",
    "MagnitudePhaseOutput",
    "MetricDiscriminator",
    "MetricGANPlusDiscriminator",
    "MetricGANPlusGenerator",
    "MetricGANPlusEnhancerNet",
    "MaskedFeaturesOutput",
    "MultiPeriodDiscriminator",
    "MultiReceptiveFieldBlock",
    "MultiResolutionSTFTDiscriminator",
    "MultiScaleDiscriminator",
    "MultiScaleSTFTDiscriminator",
    "MultiScaleSubbandCQTDiscriminator",
    "PeriodDiscriminator",
    "ResidualQuantizerOutput",
    "ResidualVectorQuantizer",
    "ResolutionDiscriminator",
    "STFTBandDiscriminator",
    "STFTScaleDiscriminator",
    "ScaleDiscriminator",
    "Snake",
    "Snake1d",
    "SnakeBeta",
    "TwoStageConformer",
    "VectorQuantizer",
    "VectorQuantizerOutput",
    "VocosBackbone",
    "VocosGenerator",
    "VocosMelSpectrogram",
    "VocosMultiPeriodDiscriminator",
    "VocosMultiResolutionDiscriminator",
    "VocosPeriodDiscriminator",
    "VocosSTFTBandDiscriminator",
    "compressed_spectrum",
    "decompressed_audio",
    "discriminator_from_dac_checkpoint",
    "from_vocos_discriminator_state_dict",
    "from_vocos_state_dict",
    "from_bigvgan_state_dict",
    "from_hifigan_state_dict",
    "generator_from_dac_checkpoint",
    "load_dac_discriminator_weights",
    "load_dac_generator_weights",
    "read_dac_checkpoint",
    "remove_dc_and_normalize_peak",
    "vocos_mel_state_dict",
    "weight_norm_conv1d",
    "weight_norm_conv2d",
    "weight_norm_conv_transpose1d",
]
