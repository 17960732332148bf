"""Built-in plugin: ONNX -> TFLite lowering for LiteRT + XNNPACK (Raspberry Pi and other ARM CPU boards).

Registered through the ``deploykit`` entry-point group, exactly like an outside vendor's plugin.
No TensorFlow: the .tflite flatbuffer is written with the schema object API of ``ai_edge_litert``.
"""

from deploykit.hookspecs import hookimpl

from deploykit_tflite.backend import TFLiteBackend

__version__ = "0.1.0"


@hookimpl
def register_backends(register):
    register(TFLiteBackend)
