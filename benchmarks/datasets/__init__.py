"""Locally generated evaluation data for benchmarks and accuracy tests (no downloads).

``textlines``: deterministic rendered text-line images for the PP-OCR models that ship in the
``rapidocr_onnxruntime`` wheel (direction classifier and PP-OCRv4 recognizer).
"""
