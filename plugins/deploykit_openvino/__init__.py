"""Built-in plugin: the OpenVINO backend (targets ``intel-cpu``, ``intel-npu`` and ``ncs2``).

Registered through the ``deploykit`` entry-point group, exactly like an outside vendor's plugin.
``openvino`` is imported lazily, inside the build steps.
"""

from deploykit.hookspecs import hookimpl

from deploykit_openvino.backend import OpenVinoBackend

__version__ = "0.1.0"


@hookimpl
def register_backends(register):
    register(OpenVinoBackend)
