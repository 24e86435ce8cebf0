"""Bottleneck-feature capture for AMED predictors (paper Sec. 3.3: the channel-mean of the
U-Net's lowest-resolution feature feeds the predictor).

:class:`BottleneckCapture` puts a forward hook on the bottleneck module (SD-type U-Nets:
``middle_block``) and a forward pre-hook on the network that owns it. Per model call it
keeps the channel-mean [B, H, W] of the rows that belong to the *conditional* batch:

* ComfyUI batches the conditional and unconditional passes of CFG into one U-Net call (or
  several, when memory is short) and tells the network which chunk is which in
  ``transformer_options["cond_or_uncond"]`` (0 = cond, 1 = uncond; each chunk holds the
  whole latent batch). The pre-hook reads that list, the hook keeps the first cond chunk.
* Without that list (a plain ``model(x, sigma)``, the digits models, A1111's un-batched
  calls) all rows are kept.

Nothing here imports a host: host objects are recognised by attributes only.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Optional, Tuple

import torch
from torch import nn

__all__ = ["BottleneckCapture", "capture_for", "find_bottleneck", "BOTTLENECK_NAMES", "COND"]

BOTTLENECK_NAMES = ("middle_block",)
COND = 0  # ComfyUI's label of a conditional chunk in cond_or_uncond


class BottleneckCapture:
    """Context manager that records the conditional channel-mean bottleneck feature.

    Args:
        module: the bottleneck module (its output is [N, C, H, W], or a tuple starting so).
        root: the network that receives ``transformer_options`` (default: no batch labels).

    Use ``clear()`` before the model call whose feature you want and ``take()`` after it.
    """

    def __init__(self, module: nn.Module, root: Optional[nn.Module] = None):
        if not isinstance(module, nn.Module):
            raise ValueError(f"the bottleneck must be a torch module, got {type(module).__name__}")
        self.module = module
        self.root = root
        self._labels: Optional[List[int]] = None
        self._feature: Optional[torch.Tensor] = None
        self._handles: list = []

    # --- hooks ----------------------------------------------------------------------------
    def _pre(self, _mod: nn.Module, args: tuple, kwargs: dict):
        opts = kwargs.get("transformer_options")
        if opts is None and len(args) > 5 and isinstance(args[5], dict):
            opts = args[5]
        labels = opts.get("cond_or_uncond") if isinstance(opts, dict) else None
        self._labels = list(labels) if labels else None
        return None

    def _hook(self, _mod: nn.Module, _inp: Any, out: Any):
        if self._feature is not None:
            return None
        h = out[0] if isinstance(out, (tuple, list)) else out
        if not isinstance(h, torch.Tensor) or h.ndim != 4:
            return None
        m = h.detach().float().mean(1)  # [N, H, W]
        labels = self._labels
        if labels:
            if m.shape[0] % len(labels):
                return None
            chunks = m.chunk(len(labels))
            conds = [c for c, lab in zip(chunks, labels) if lab == COND]
            if not conds:
                return None  # an uncond-only call (memory-split CFG): wait for the cond one
            m = conds[0]
        self._feature = m
        return None

    def __enter__(self) -> "BottleneckCapture":
        self._handles.append(self.module.register_forward_hook(self._hook))
        if self.root is not None:
            self._handles.append(self.root.register_forward_pre_hook(self._pre, with_kwargs=True))
        return self

    def __exit__(self, *exc) -> bool:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._labels = None
        return False

    # --- results --------------------------------------------------------------------------
    def clear(self) -> None:
        self._feature = None
        self._labels = None

    def take(self) -> Optional[torch.Tensor]:
        """The [B, H, W] feature of the model call since ``clear()`` (None if none ran)."""
        f, self._feature = self._feature, None
        return f


def _candidates(model: Any) -> Iterable[Any]:
    """The model and the objects hosts wrap it in: ComfyUI's KSamplerX0Inpaint ->
    CFGGuider -> ModelPatcher -> BaseModel; k-diffusion/A1111 wrappers' inner_model."""
    seen = set()
    todo = [model]
    while todo:
        obj = todo.pop(0)
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        yield obj
        for attr in ("inner_model", "model_patcher", "model", "net", "diffusion_model"):
            try:
                todo.append(getattr(obj, attr, None))
            except Exception:  # noqa: BLE001 - exotic properties
                pass


def find_bottleneck(model: Any) -> Tuple[nn.Module, nn.Module]:
    """``(bottleneck module, the network owning it)`` of a model or host wrapper (for a
    Sequential ``middle_block``, its last layer).

    Raises ``ValueError`` when there is no ``middle_block`` (DiT / flow transformers such as
    SD3 and Flux): use a time-only predictor there."""
    for obj in _candidates(model):
        if not isinstance(obj, nn.Module):
            continue
        for name, mod in obj.named_modules():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in BOTTLENECK_NAMES:
                parent_name = name.rsplit(".", 1)[0] if "." in name else ""
                root = obj.get_submodule(parent_name) if parent_name else obj
                # A Sequential bottleneck may be run layer by layer (ComfyUI's U-Net iterates
                # middle_block's children without calling it): hook its last layer, whose
                # output is the block's output.
                if isinstance(mod, nn.Sequential) and len(mod) > 0:
                    mod = mod[len(mod) - 1]
                return mod, root
    raise ValueError("this model has no U-Net middle_block to read the AMED bottleneck feature from; "
                     "use a time-only predictor (feature_mode 'time')")


def capture_for(model: Any) -> BottleneckCapture:
    """A :class:`BottleneckCapture` on the model's ``middle_block``."""
    module, root = find_bottleneck(model)
    return BottleneckCapture(module, root)
