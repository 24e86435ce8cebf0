"""AMED predictors for the user's own model: storage (:mod:`.storage`), distillation
training (:mod:`.train`) and a safe converter for official checkpoints (:mod:`.convert`).

The solvers and the bottleneck capture they attach while sampling are in
:mod:`seeds_samplers.samplers.amed` and :mod:`seeds_samplers.samplers.amed_capture` (pure
torch); the command line on the test models (``python -m seeds_samplers amed-train``) and
the evaluation are in :mod:`seeds_samplers.bench.amed_train` and
:mod:`seeds_samplers.bench.amed_evaluate`. Nothing here imports ``bench/`` or ``digits/``:
the hosts' nodes use this package."""
