"""Docker support: toolchain images to build in, device images to run bundles in.

``toolchain``  per-backend build images (Dockerfile rendered from ``templates/``) and the exact
               ``docker build`` / ``docker run`` command lines of ``deploykit build --docker``
``device``     ``docker buildx build`` of a bundle's own Dockerfile (``deploykit package --docker``)
``engine``     is docker / the daemon / buildx / qemu binfmt here; runs commands; one-line errors
"""

from deploykit.docker.engine import DockerStatus, docker_status
from deploykit.docker.toolchain import TOOLCHAIN_IMAGES, ToolchainImage, toolchain_for_backend

__all__ = ["DockerStatus", "TOOLCHAIN_IMAGES", "ToolchainImage", "docker_status", "toolchain_for_backend"]
