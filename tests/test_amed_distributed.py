"""AMED training under torch.distributed (as ``torchrun --nproc_per_node 2`` runs it): two CPU
processes on the gloo backend, each computing half of every batch, give the single-process
loss curve, held-out curve and predictor to round-off (same seeds, same total batch)."""

from __future__ import annotations

import pytest
import torch

from support import amed_ranks


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_two_processes_reproduce_the_single_process_training(tmp_path):
    one = amed_ranks.run()
    two = amed_ranks.spawn(2, str(tmp_path))
    assert one["processes"] == 1 and two["processes"] == 2
    s = amed_ranks.settings()
    assert len(one["history"]) == len(two["history"]) == s.epochs * s.rounds
    # the curve moves (training happened), and both runs follow it to round-off
    assert max(one["history"]) > 1.05 * min(one["history"])
    torch.testing.assert_close(torch.tensor(two["history"]), torch.tensor(one["history"]), rtol=1e-6, atol=0)
    torch.testing.assert_close(torch.tensor(two["curve"]), torch.tensor(one["curve"]), rtol=1e-6, atol=0)
    for k, v in one["state"].items():
        torch.testing.assert_close(two["state"][k], v, rtol=1e-5, atol=1e-7)


def test_a_batch_that_does_not_split_is_refused():
    from seeds_samplers.amed.train import _Ranks

    r = _Ranks()
    r.on, r.world, r.rank = True, 2, 1
    assert r.rows(8) == slice(4, 8)
    with pytest.raises(ValueError, match="does not split evenly over 2 processes"):
        r.rows(7)
