"""Built-in plugin: ONNX -> TFLite lowering for LiteRT + XNNPACK (Raspberry Pi and other ARM CPU boards).

Registered through the ``deploykit`` entry-point group, exactly like an outside vendor's plugin.
No TensorFlow: the .tflite flatbuffer is written with the schema object API of ``ai_edge_litert``.
"""

from deploykit.backend import LazyBackend
from deploykit.hookspecs import hookimpl

__version__ = "0.1.0"

# what `deploykit doctor` says a build on this machine does without the device
HOST_NOTE = "builds here and verifies with LiteRT + XNNPACK on this CPU (the board's speed differs)"


@hookimpl
def register_backends(register):
    # by path: the backend module imports onnx_ir, which `deploykit targets` and `doctor` never need
    register(LazyBackend("tflite", "deploykit_tflite.backend:TFLiteBackend",
                         host_modules=("ai_edge_litert",), host_note=HOST_NOTE))
