"""Built-in plugin: Coral Edge TPU (coral-usb, coral-devboard) on top of the TFLite lowering.

Full-integer TFLite with int8 I/O, a TPU/CPU split prediction (``deploykit inspect --target
coral-usb``), TPU rewrite rules, and ``edgetpu_compiler`` integration (or ``compile.sh``).
Registered through the ``deploykit`` entry-point group, like an outside vendor's plugin.
"""

from deploykit.backend import LazyBackend
from deploykit.hookspecs import hookimpl

__version__ = "0.1.0"

# what `deploykit doctor` says a build on this machine does without the device
HOST_NOTE = ("builds the full-int8 .tflite and verifies it on this CPU (LiteRT); the Edge TPU model needs "
             "edgetpu_compiler (x86-64 Linux), running it needs a Coral device")


@hookimpl
def register_backends(register):
    # by path: the backend module imports onnx_ir, which `deploykit targets` and `doctor` never need
    register(LazyBackend("edgetpu", "deploykit_edgetpu.backend:EdgeTpuBackend",
                         host_modules=("ai_edge_litert",), host_note=HOST_NOTE))
