"""Quantization: straight-through quantizers, calibration, QAT and the hand-off to the chip."""

from s2jax.quant.convert import ScaleSearch, calibrate, is_quantized, qat, quantize, search_scales
from s2jax.quant.egru import qat_egru, quantize_egru
from s2jax.quant.quantizers import QuantConfig, WeightQuantizer, ste_clip, ste_round

__all__ = ["qat_egru", "quantize_egru", "QuantConfig", "ScaleSearch", "search_scales", "WeightQuantizer", "calibrate", "is_quantized", "qat", "quantize", "ste_clip", "ste_round"]
