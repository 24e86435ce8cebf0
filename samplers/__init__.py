"""Pure-PyTorch diffusion solvers in k-diffusion's convention.

``sample_x(model, x, sigmas, extra_args=None, callback=None, disable=None, **params)``
where ``model(x, sigma, **extra_args)`` returns the denoised x0. Nothing here imports a
host (ComfyUI, A1111, Forge).

Importing this package imports every solver module, and each registers its
:class:`SamplerSpec` in :data:`SAMPLERS` (schedules in :data:`SCHEDULES`).
"""

from .registry import SAMPLERS, SCHEDULES, Param, SamplerSpec, ScheduleSpec  # noqa: I001 (leaf first)
from . import schedules  # noqa: F401  (registers the schedules)
# registration order = menu order
from .seeds import sample_seeds_1, sample_seeds_2, sample_seeds_3  # noqa: I001
from .er_sde import sample_er_sde
from .deis import sample_deis
from .ipndm import sample_ipndm
from .amed import sample_amed, sample_amed_plugin
from .model_types import FLOW, VE, ModelType, resolve_model_type

__all__ = [
    "SAMPLERS", "SCHEDULES", "Param", "SamplerSpec", "ScheduleSpec", "ModelType", "VE", "FLOW",
    "resolve_model_type", "sample_seeds_1", "sample_seeds_2", "sample_seeds_3", "sample_er_sde",
    "sample_deis", "sample_ipndm", "sample_amed", "sample_amed_plugin",
]
