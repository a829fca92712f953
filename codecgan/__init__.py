"""codecgan: adversarial audio training that tells you early, with evidence, when and why it goes wrong."""

from codecgan.codec_module import CodecGAN
from codecgan.enhance_module import MetricGANEnhancer
from codecgan.gan_module import GANModule

__all__ = ["CodecGAN", "GANModule", "MetricGANEnhancer"]
