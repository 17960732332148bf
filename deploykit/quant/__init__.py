"""Calibration data, quantization schemes and parameters, verification metrics."""
