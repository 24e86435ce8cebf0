"""Pure-PyTorch diffusion solvers in k-diffusion's convention.

``sample_x(model, x, sigmas, extra_args=None, callback=None, disable=None, **params)``
where ``model(x, sigma, **extra_args)`` returns the denoised x0. Nothing here imports a
host (ComfyUI, A1111, Forge).
"""

from .deis import sample_deis
from .er_sde import sample_er_sde
from .ipndm import sample_ipndm
from .model_types import FLOW, VE, ModelType, resolve_model_type
from .registry import SAMPLERS, Param, SamplerSpec
from .seeds import sample_seeds_1, sample_seeds_2, sample_seeds_3

__all__ = [
    "SAMPLERS", "Param", "SamplerSpec", "ModelType", "VE", "FLOW", "resolve_model_type",
    "sample_seeds_1", "sample_seeds_2", "sample_seeds_3", "sample_er_sde",
    "sample_deis", "sample_ipndm",
]
