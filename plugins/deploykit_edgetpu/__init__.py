"""Built-in plugin: Coral Edge TPU (coral-usb, coral-devboard) on top of the TFLite lowering.

Full-integer TFLite with int8 I/O, a TPU/CPU split prediction (``deploykit inspect --target
coral-usb``), TPU rewrite rules, and ``edgetpu_compiler`` integration (or ``compile.sh``).
Registered through the ``deploykit`` entry-point group, like an outside vendor's plugin.
"""

from deploykit.hookspecs import hookimpl

from deploykit_edgetpu.backend import EdgeTpuBackend

__version__ = "0.1.0"


@hookimpl
def register_backends(register):
    register(EdgeTpuBackend)
