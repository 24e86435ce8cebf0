"""AMED predictors for the user's own model: bottleneck capture (:mod:`.capture`), storage
(:mod:`.storage`), distillation training (:mod:`.train`, ``python -m seeds_samplers
amed-train``) and a safe converter for official checkpoints (:mod:`.convert`).

The solvers themselves are in :mod:`seeds_samplers.samplers.amed` (pure torch)."""
