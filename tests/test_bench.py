"""The benchmark's own machinery: host schedules by their definitions (against
k-diffusion's and the package's independent implementations, and against a real ComfyUI
checkout when COMFYUI_ROOT is set), mean ± spread and the target verdicts, the sweep's
parameter grid, and small end-to-end runs of ``bench``, ``bench --sweep`` and ``demo``."""

from __future__ import annotations

import json
import math
import os
import subprocess
import textwrap

import pytest
import torch

from seeds_samplers.bench.benchmark import _verdict, main as bench_main, rank_table, sweep_grid, target_lines
from seeds_samplers.bench.compare import import_kdiffusion, schedule_for
from seeds_samplers.bench.grid import mean_sd
from seeds_samplers.bench.host_schedules import HOST_SCHEDULES, flow_shift_of, host_sigmas
from seeds_samplers.samplers.model_types import ModelType
from seeds_samplers.samplers.schedules import sd_discrete_sigmas

from support.host_types import FLOW, FLOW_TABLE, SD

pytestmark = pytest.mark.usefixtures("one_thread")



# --- host schedules -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(HOST_SCHEDULES))
@pytest.mark.parametrize("mt", [SD, FLOW], ids=["sd", "flow"])
@pytest.mark.parametrize("n", [1, 4, 10, 33])
def test_host_schedules_are_valid(name, mt, n):
    s = host_sigmas(name, n, mt)
    assert s.dtype == torch.float64 and float(s[-1]) == 0.0
    assert bool((s[1:] < s[:-1]).all()), s
    assert len(s) == n + 1 or (name == "beta" and 2 <= len(s) <= n + 1)
    assert float(s[0]) == pytest.approx(mt.sigma_max, rel=1e-9)
    assert float(s[-2]) >= mt.sigma_min * (1 - 1e-9)


def test_normal_on_sd_is_kdiffusions_discrete_schedule():
    for n in (5, 10, 20, 50):
        assert torch.allclose(host_sigmas("normal", n, SD), sd_discrete_sigmas(n), rtol=1e-12)


def test_karras_and_exponential_match_kdiffusion():
    K = import_kdiffusion()
    for mt in (SD, FLOW):
        for n in (4, 10, 25):
            got = host_sigmas("karras", n, mt)
            want = K.get_sigmas_karras(n, mt.sigma_min, mt.sigma_max, rho=7.0).to(torch.float64)
            assert torch.allclose(got, want, rtol=1e-5)
            got = host_sigmas("exponential", n, mt)
            want = K.get_sigmas_exponential(n, mt.sigma_min, mt.sigma_max).to(torch.float64)
            assert torch.allclose(got, want, rtol=1e-5)


def test_simple_takes_every_kth_table_entry():
    s = host_sigmas("simple", 10, SD)
    assert torch.equal(s[:-1], SD.sigma_table.flip(0)[::100])
    # on a flow model the last positive sigma is the table entry at t = 1/n: about 3/n for shift 3
    for n in (10, 20, 40):
        last = float(host_sigmas("simple", n, FLOW)[-2])
        assert last == pytest.approx(3 * (1 / n) / (1 + 2 / n), rel=1e-12)


def test_normal_and_sgm_uniform_on_flow_use_the_hosts_timestep_maps():
    # timestep(sigma) = 1000 sigma, sigma(t) = shift map of t / 1000: the end timestep is
    # 1000 * sigma_min, so the last positive sigma is shift(sigma_min), above sigma_min
    smin = float(FLOW_TABLE[0])
    s = host_sigmas("normal", 10, FLOW)
    assert float(s[-2]) == pytest.approx(3 * smin / (1 + 2 * smin), rel=1e-12)
    t = torch.linspace(1000, 1000 * smin, 11, dtype=torch.float64)[:-1] / 1000
    assert torch.allclose(host_sigmas("sgm_uniform", 10, FLOW)[:-1], 3 * t / (1 + 2 * t), rtol=1e-12)
    assert flow_shift_of(FLOW_TABLE) == pytest.approx(3.0, rel=1e-12)
    with pytest.raises(ValueError, match="shifted"):
        flow_shift_of(FLOW_TABLE ** 2)


def test_beta_schedule_follows_the_beta_quantiles():
    from scipy.stats import beta

    n = 12
    s = host_sigmas("beta", n, SD)
    idx = [round(float(beta.ppf(1 - k / n, 0.6, 0.6)) * 999) for k in range(n)]
    assert s[:-1].tolist() == [float(SD.sigma_table[i]) for i in idx]
    # the Beta(0.6, 0.6) density is U-shaped: steps cluster at both ends
    gaps = torch.tensor(idx[:-1]) - torch.tensor(idx[1:])
    assert gaps[0] < gaps[n // 2] and gaps[-1] < gaps[n // 2]


def test_unknown_schedules_are_named():
    with pytest.raises(ValueError, match="unknown host schedule"):
        host_sigmas("uniform", 10, SD)
    with pytest.raises(ValueError, match="unknown schedule 'uniform'"):
        schedule_for(type("M", (), {"seeds_model_type": SD})(), 10, "uniform")
    with pytest.raises(ValueError, match="sigma table"):
        host_sigmas("simple", 10, ModelType("ve", 0.002, 80.0))


def _comfy_python():
    return os.environ.get("COMFYUI_PYTHON") or __import__("sys").executable


def test_host_schedules_match_a_real_comfyui_checkout(comfyui_root):
    """ComfyUI's own calculate_sigmas on its own model_sampling objects, in its Python."""
    code = textwrap.dedent("""
        import json, os
        from seeds_samplers.bench.comfy_runner import host_model_sampling, import_comfy
        import_comfy(os.environ["COMFYUI_ROOT"])
        import comfy.samplers as cs
        out = {}
        for kind in ("ve", "flow"):
            ms = host_model_sampling(kind, 3.0)
            for name in ("simple", "normal", "karras", "exponential", "sgm_uniform", "beta"):
                for n in (4, 10, 33):
                    out[f"{kind}/{name}/{n}"] = cs.calculate_sigmas(ms, name, n).double().tolist()
        print(json.dumps(out))
    """)
    proc = subprocess.run([_comfy_python(), "-c", code], capture_output=True, text=True, timeout=600,
                          cwd=comfyui_root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    host = json.loads(proc.stdout.strip().splitlines()[-1])
    for key, want in host.items():
        kind, name, n = key.split("/")
        got = host_sigmas(name, int(n), SD if kind == "ve" else FLOW)
        assert torch.allclose(got, torch.tensor(want, dtype=torch.float64), rtol=2e-6, atol=1e-7), key


# --- statistics and verdicts ----------------------------------------------------------------------


def test_mean_sd_formatting():
    from seeds_samplers.bench.report import fmt_mean_sd

    assert fmt_mean_sd(12.345, 0.81) == "12.3 ± 0.8"
    assert fmt_mean_sd(0.0590, 0.0002) == "0.0590 ± 0.0002"
    assert fmt_mean_sd(0.0590, 0.00002) == "0.0590 ± 2e-05"
    assert fmt_mean_sd(6.78e-4, 2e-5) == "6.78e-04 ± 2.0e-05"
    assert fmt_mean_sd(math.inf, math.inf) == "diverged" and fmt_mean_sd(None, None) == "–"


def test_mean_sd():
    m, s = mean_sd([1.0, 2.0, 4.0])
    assert m == pytest.approx(7 / 3) and s == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2
                                                                     + (4 - 7 / 3) ** 2) / 2))
    assert mean_sd([1.0, math.inf]) == (math.inf, math.inf)
    assert mean_sd([None, None]) == (None, None)


def _cell(label, source, nfe, mean, sd, stochastic=True, model="m"):
    return dict(model=model, schedule="karras", label=label, source=source, nfe=nfe, stochastic=stochastic,
                calls=nfe, mean=mean, sd=sd, n=3, ref_mean=None, ref_sd=None)


def test_verdicts_need_the_intervals_apart():
    assert _verdict(_cell("a", "ours", 10, 1.0, 0.1), _cell("b", "k", 10, 1.5, 0.1)).startswith("met")
    assert _verdict(_cell("a", "ours", 10, 1.0, 0.3), _cell("b", "k", 10, 1.5, 0.3)) == \
        "MISSED: level within the spread (ours -33%)"
    assert _verdict(_cell("a", "ours", 10, 1.6, 0.3), _cell("b", "k", 10, 1.5, 0.3)).startswith("MISSED: level")
    assert _verdict(_cell("a", "ours", 10, 2.6, 0.3), _cell("b", "k", 10, 1.5, 0.3)).startswith("MISSED (behind beyond")


def test_paired_verdicts_use_the_per_seed_differences():
    a = dict(_cell("a", "ours", 10, 10.0, 5.0), values={0: 5.0, 1: 10.0, 2: 15.0})
    b = dict(_cell("b", "k", 10, 11.0, 5.0), values={0: 6.0, 1: 11.2, 2: 15.8})
    assert _verdict(a, b).startswith("met (paired difference -1")  # same seeds: always ahead
    c = dict(_cell("c", "k", 10, 11.0, 5.0), values={0: 3.0, 1: 11.0, 2: 19.0})
    assert _verdict(a, c).startswith("MISSED: level")


def test_target_lines_pick_our_best_and_every_stochastic_anchor():
    cells = [_cell("S2", "ours", 10, 3.0, 0.1), _cell("S3", "ours", 10, 2.0, 0.1),
             _cell("DEIS", "ours", 10, 9.0, 0.1, stochastic=False),
             _cell("dpmpp_2m_sde", "k-diffusion", 10, 2.5, 0.1), _cell("sa_solver", "ComfyUI", 10, 1.5, 0.1),
             _cell("dpmpp_2m", "k-diffusion", 10, 8.0, 0.1, stochastic=False),
             _cell("DEIS", "ours", 5, 4.0, 0.1, stochastic=False), _cell("iPNDM", "ours", 5, 3.0, 0.1, stochastic=False),
             _cell("res_multistep", "ComfyUI", 5, 3.5, 0.1, stochastic=False),
             _cell("dpmpp_2m", "k-diffusion", 5, 2.9, 0.5, stochastic=False)]
    lines = target_lines(cells)
    assert any("S3" in t and "dpmpp_2m_sde" in t and "met" in t for t in lines)
    assert any("S3" in t and "sa_solver" in t and "MISSED" in t for t in lines)
    assert not any("dpmpp_2m (" in t and "NFE 10" in t for t in lines)  # deterministic anchors only at 5 and 8
    assert any("NFE 5: iPNDM" in t and "res_multistep" in t and ": met" in t for t in lines)
    assert any("NFE 5: iPNDM" in t and "dpmpp_2m" in t and ": MISSED (at least as close; MISSED: level" in t
               for t in lines)


def test_rank_table_orders_by_mean_rank():
    cells = [_cell("a", "ours", 5, 1.0, 0.0), _cell("b", "ours", 5, 2.0, 0.0),
             _cell("a", "ours", 10, 1.0, 0.0), _cell("b", "ours", 10, 0.5, 0.0),
             _cell("a", "ours", 20, 1.0, 0.0), _cell("b", "ours", 20, 4.0, 0.0)]
    ranked = rank_table(cells)
    assert [r[0] for r in ranked] == ["a", "b"]
    assert ranked[0][2] == pytest.approx(4 / 3) and ranked[0][3] == pytest.approx(2 ** (1 / 3))
    tied = rank_table([_cell("a", "ours", 5, 1.0, 0.0), _cell("b", "ours", 5, 1.0, 0.0), _cell("c", "ours", 5, 2.0, 0.0)])
    assert [r[2] for r in tied] == [1.5, 1.5, 3.0]
    # a cell whose best is at or below 0 (a KID to a limit) ranks but gives no ratio
    signed = rank_table([_cell("a", "ours", 5, -1.0, 0.0), _cell("b", "ours", 5, 2.0, 0.0),
                         _cell("a", "ours", 10, 2.0, 0.0), _cell("b", "ours", 10, 1.0, 0.0)])
    assert [(r[0], r[2]) for r in signed] == [("b", 1.5), ("a", 1.5)]  # tied ranks: the ratio orders
    assert {r[0]: r[3] for r in signed} == {"a": pytest.approx(2.0), "b": pytest.approx(1.0)}
    alone = rank_table([_cell("a", "ours", 5, -1.0, 0.0), _cell("b", "ours", 5, 2.0, 0.0)])
    assert all(math.isnan(r[3]) for r in alone)


def test_sweep_grid_is_the_product_over_the_menu_entry_settings():
    from seeds_samplers.samplers.registry import get

    spec = get("seeds_2")
    combos = sweep_grid("seeds_2", ["eta=0,0.5,1", "variant=phi_1,phi_2"])
    assert len(combos) == 6
    assert {(c["eta"], c["variant"]) for c in combos} == {(e, v) for e in (0.0, 0.5, 1.0) for v in ("phi_1", "phi_2")}
    for c in combos:
        assert {k: c[k] for k in spec.menu if k not in ("eta", "variant")} == \
            {k: v for k, v in spec.menu.items() if k not in ("eta", "variant")}
    assert sweep_grid("seeds_2", []) == [dict(spec.menu)]
    with pytest.raises(ValueError, match="no parameter 'nope'"):
        sweep_grid("seeds_2", ["nope=1"])
    with pytest.raises(ValueError, match="eta must be in"):
        sweep_grid("seeds_2", ["eta=-1"])
    with pytest.raises(ValueError, match="name=v1,v2"):
        sweep_grid("seeds_2", ["eta"])
    # values are read as the menus read text (Param.check): true/false, numbers
    assert [c["sigma_steps"] for c in sweep_grid("seeds_2", ["sigma_steps=False, true"])] == [False, True]
    with pytest.raises(ValueError, match="sigma_steps must be True or False"):
        sweep_grid("seeds_2", ["sigma_steps=maybe"])
    with pytest.raises(ValueError, match="unknown sampler"):
        sweep_grid("nope", [])


# --- end to end, small ---------------------------------------------------------------------------------


def test_bench_writes_tables_doc_and_readme(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- bench:start -->\nold\n<!-- bench:end -->\n")
    out = tmp_path / "out"
    assert bench_main(["--models", "photo8", "--budgets", "5", "10", "--seeds", "2", "--samples", "24",
                       "--ref-samples", "4", "--ref-steps", "20", "--skip-overhead", "--no-comfy", "--out", str(out),
                       "--readme", str(readme)]) == 0
    doc = (tmp_path / "docs" / "benchmark.md").read_text()
    assert "<!-- bench-model-photo8-karras:start -->" in doc and " ± " in doc
    assert "| dpmpp_2m_sde | k-diffusion |" in doc and "| SEEDS-3 | ours |" in doc
    assert "target NFE 10:" in doc and "Where ours lose:" in doc
    assert (tmp_path / "docs" / "images" / "bench_photo8_karras.png").stat().st_size > 5000
    section = readme.read_text().split("<!-- bench:start -->")[1]
    assert section.strip().startswith("Command: `python ") and "docs/benchmark.md" in section


def test_sweep_command_prints_every_configuration(tmp_path, capsys):
    assert bench_main(["--sweep", "seeds_3", "--set", "eta=0,1", "--models", "photo8", "--budgets", "5",
                       "--seeds", "2", "--samples", "16", "--no-comfy", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "sweep_seeds_3.md").read_text()
    assert "SEEDS-3 [eta=0]" in md and "SEEDS-3 [eta=1]" in md and "Aggregate rank" in md
    # the anchors are of the swept configurations' kind: deterministic ones for an ODE sweep
    args = ["--sweep", "er_sde", "--models", "photo8", "--budgets", "5", "--seeds", "2", "--samples", "16",
            "--no-comfy", "--out", str(tmp_path), "--anchors", "dpmpp_2m"]
    assert bench_main(args + ["--set", "noise_scale_function=ode"]) == 0
    assert "| dpmpp_2m | k-diffusion |" in (tmp_path / "sweep_er_sde.md").read_text()
    with pytest.raises(SystemExit):
        bench_main(args + ["--set", "noise_scale_function=original_sde"])
    assert "unknown anchors ['dpmpp_2m']" in capsys.readouterr().err


def test_limit_sweep_scores_the_solve_on_a_trained_model(tmp_path, monkeypatch):
    """``--yardstick limit`` in a sweep: the configurations are scored against the ODE limit of
    the trained model from the same latents (cheap patches model, 16 latents): order 1 (DDIM)
    lands farther from it than order 2 at 10 calls, and both far above zero; each configuration
    is also read against the menu entry's (order 3) as a paired difference."""
    monkeypatch.setenv("SEEDS_SAMPLERS_CACHE", str(tmp_path / "cache"))
    assert bench_main(["--sweep", "ipndm", "--set", "order=1,2,3", "--models", "patches-eps", "--budgets", "10",
                       "--seeds", "3", "--digits-samples", "16", "--no-comfy", "--yardstick", "limit",
                       "--out", str(tmp_path)]) == 0
    md = (tmp_path / "sweep_ipndm.md").read_text()
    assert "RMS x 10^3 to the ODE limit" in md
    row = {line.split("|")[1].strip(): float(line.split("|")[3].split("±")[0].strip(" *"))
           for line in md.split("Aggregate rank")[0].splitlines() if line.startswith("| iPNDM [order=")}
    assert 0 < row["iPNDM [order=2]"] < row["iPNDM [order=1]"] / 2, md
    # each configuration against the menu entry's (order 3), paired: order 1 lands further
    line = next(ln for ln in md.splitlines() if ln.startswith("- NFE 10, row − iPNDM [order=3]: "))
    first = line.split("iPNDM [order=1] ")[1].split(";")[0]
    assert first.endswith("(further)"), line
    assert float(first.split("±")[0]) == pytest.approx(row["iPNDM [order=1]"] - row["iPNDM [order=3]"], rel=0.02)
    assert any((tmp_path / "cache").rglob("limits/*.pt"))


def test_demo_digits_part(tmp_path):
    from seeds_samplers.bench import demo
    from seeds_samplers.samplers.registry import SAMPLERS

    assert demo.main(["--samples", "16", "--budgets", "5", "--digits-samples", "8", "--digits-budgets", "4",
                      "--out", str(tmp_path)]) == 0
    md = (tmp_path / "demo.md").read_text()
    assert "FD" in md and "real training digits score" in md
    for spec in SAMPLERS.values():
        assert md.count(f"| {spec.title} | ours |") == 2  # mixture table and digits table
    assert (tmp_path / "demo_digits_eps_nfe4.png").stat().st_size > 5000


@pytest.mark.usefixtures("comfyui_root")  # skips without a ComfyUI checkout
def test_comfyui_anchors_run_in_the_checkouts_python():
    """ComfyUI's own samplers through the subprocess runner: the call counts of the cost
    model, and deterministic ones converge to the bench's reference ODE solution."""
    from seeds_samplers.bench.comfy import COMFY_SAMPLERS, comfy_contenders, run_comfy_jobs
    from seeds_samplers.bench.grid import reference_final
    from seeds_samplers.bench.models import build_model

    model = build_model("photo8-flow")
    x = model.prior(4, 0)
    ref = reference_final(model, x, steps=100)
    jobs, expect = [], []
    for c in comfy_contenders():
        n = c.intervals_for(10)
        jobs.append(dict(sampler=c.params["comfy"], x=x, sigmas=schedule_for(model.denoiser, n, "normal"),
                         noise_seed=1, stochastic=c.stochastic))
        expect.append(c.calls(n))
    for name in ("deis", "ipndm"):
        jobs.append(dict(sampler=name, x=x, sigmas=schedule_for(model.denoiser, 60, "normal"), noise_seed=1,
                         stochastic=False))
        expect.append(60)
    results = run_comfy_jobs(model, jobs)
    for job, (out, calls), want in zip(jobs, results, expect):
        assert out.shape == x.shape and bool(torch.isfinite(out).all()), job["sampler"]
        assert calls == want, (job["sampler"], calls, want)
    for out, _ in results[-2:]:
        assert float(((out - ref) ** 2).flatten(1).mean(1).sqrt().max()) < 0.01
    assert set(COMFY_SAMPLERS) == {"seeds_2", "seeds_3", "er_sde", "sa_solver", "dpmpp_2m_sde", "dpmpp_2m_sde_heun",
                                   "res_multistep", "deis", "ipndm"}


@pytest.mark.usefixtures("comfyui_root")  # skips without a ComfyUI checkout
@pytest.mark.parametrize("name", ["photo8-flow", "photo8"])
@pytest.mark.parametrize("expansion, host", [("lambda", "dpmpp_2m_sde_heun"), ("midpoint", "dpmpp_2m_sde")])
def test_er_sde_in_lambda_order2_is_comfyuis_dpmpp_2m_sde(name, expansion, host):
    """ER-SDE with phi = s^2 in lambda at order 2 is SDE-DPM-Solver++(2M): with the exact
    weight ComfyUI's own dpmpp_2m_sde_heun, with the midpoint rule its dpmpp_2m_sde (both step
    in the model's half-log-SNR, flow models too): the same samples from the same latents and
    noise, at eta 1 and 2 (without the corrector and the first-order long steps, which the menu
    entry adds: this normal schedule ends with a long step); at eta 1 also when both are driven
    by the same Brownian path (bench/compare.py PathNoise)."""
    from seeds_samplers.bench.comfy import run_comfy_jobs
    from seeds_samplers.bench.compare import ours
    from seeds_samplers.bench.models import build_model

    model = build_model(name)
    x = model.prior(4, 0)
    sigmas = schedule_for(model.denoiser, 9, "normal")
    # both hosts move a flow model's first sigma of 1 (lambda = -inf) off 1, by different
    # amounts (ComfyUI through the shifted percent_to_sigma): start below 1 so neither does
    if name.endswith("-flow"):
        sigmas[0] = sigmas[0].clamp(max=0.999)
    for eta in (1.0, 2.0):
        c = ours("er_sde", expansion=expansion, order=2, noise_scale_function="original_sde", noise_start=0.0, eta=eta,
                 corrector=False, long_step_ratio=0.0)
        mine = c(model.denoiser, x, sigmas, 7)
        if eta == 1.0:
            (theirs, calls), = run_comfy_jobs(model, [dict(sampler=host, x=x, sigmas=sigmas,
                                                           noise_seed=7, stochastic=True)])
            assert calls == 9
            # driven by one Brownian path per sample (the pathwise yardstick's noise): the same too
            (path, _), = run_comfy_jobs(model, [dict(sampler=host, x=x, sigmas=sigmas, noise_seed=7,
                                                     stochastic=True, noise="path")])
            assert float((c(model.denoiser, x, sigmas, 7, "path") - path).abs().max()) < \
                1e-4 * max(1.0, float(path.abs().max()))
            assert float((path - theirs).abs().max()) > 1e-3
        else:  # the eta family phi_eta = s^(1 + eta) is the host sampler's eta
            (theirs, _), = run_comfy_jobs(model, [dict(sampler=host, x=x, sigmas=sigmas,
                                                       noise_seed=7, stochastic=True, params={"eta": eta})])
        assert float((mine - theirs).abs().max()) < 1e-4 * max(1.0, float(theirs.abs().max()))
        other = ours("er_sde", order=2, noise_scale_function="original_sde", noise_start=0.0, eta=eta,
                     expansion="lambda" if expansion == "midpoint" else "midpoint", corrector=False)
        assert float((other(model.denoiser, x, sigmas, 7) - theirs).abs().max()) > 1e-3
        corrected = ours("er_sde", expansion=expansion, order=2, noise_scale_function="original_sde", eta=eta,
                         noise_start=0.0, corrector=True)  # the menu entry's corrector: another update
        assert float((corrected(model.denoiser, x, sigmas, 7) - theirs).abs().max()) > 1e-3


def test_a_result_of_ours_is_keyed_by_what_the_solver_computes(monkeypatch):
    """A decided table's cached result of ours is keyed by the solver's output on a small exact
    problem at the cell's own model type and sigmas: a change to one solver's arithmetic
    recomputes its rows, not those of the others; an anchor keeps its source-file key."""
    from seeds_samplers.bench import decide
    from seeds_samplers.bench.compare import kdiffusion, ours
    from seeds_samplers.samplers import ipndm

    model = decide.kid_model("patches-flow")
    entries = [ours("ipndm"), ours("ipndm", order=2), ours("deis"), ours("er_sde")]

    def keys(nfe=8):
        decide._BEHAVIOUR.clear()
        return [decide._key(model, "simple", 0, c, nfe, 500)[0] for c in entries]

    before = keys()
    assert len(set(before)) == 4 and keys() == before  # settings that compute differently differ; stable
    assert keys(10) != before  # another cell
    weights = list(ipndm.IPNDM_WEIGHTS)
    weights[2] = (23.0 / 12.0, -16.0 / 12.0, 5.0 / 12.0 + 1e-6)  # iPNDM's third-order weights only
    monkeypatch.setattr(ipndm, "IPNDM_WEIGHTS", tuple(weights))
    after = keys()
    assert after[0] != before[0] and after[1:] == before[1:]
    anchor = kdiffusion("dpmpp_2m")
    assert decide._key(model, "simple", 0, anchor, 8, 500)[1]["code"] == decide._source_version("k-diffusion")


def test_sweep_reads_each_configuration_against_the_menu_entry_s():
    """The paired lines of a sweep: row minus the menu entry's configuration per seed, called
    only beyond the paired spread; on a path table a configuration of another SDE is left out
    (it is scored against its own SDE's solution)."""
    from seeds_samplers.bench.sweep import _against_menu_lines

    def cell(label, values, process="sde"):
        return dict(label=label, source="ours", nfe=10, mean=sum(values.values()) / len(values), values=values,
                    process=process)

    menu = cell("X [a=1]", {0: 10.0, 1: 20.0, 2: 30.0})
    cells = [menu, cell("X [a=2]", {0: 12.0, 1: 22.1, 2: 31.9}), cell("X [a=3]", {0: 9.0, 1: 21.0, 2: 30.0}),
             cell("X [a=4]", {0: 1.0, 1: 1.0, 2: 1.0}, process="own:X [a=4]")]
    (line,) = _against_menu_lines(cells, [10], 3, "X [a=1]")
    assert line.startswith("- NFE 10, row − X [a=1]: X [a=2] 2.00 ± 0.10 (further); X [a=3] ")
    assert line.endswith("(level)") and "X [a=4]" not in line
    assert _against_menu_lines(cells, [10], 3, None) == []  # no configuration at the menu's settings


def test_a_swept_parameter_at_its_default_is_the_menu_entry_s_configuration():
    """The sweep finds the menu entry's configuration by its resolved settings: a parameter the
    entry leaves at its default, swept at that default, is the entry's; any other value is not."""
    from seeds_samplers.bench.sweep import is_menu_configuration, sweep_grid
    from seeds_samplers.samplers import registry

    spec = registry.get("er_sde")
    assert "corrector_max_sigma" not in spec.menu
    at_default, other = sweep_grid("er_sde", ["corrector_max_sigma=0,2"])
    assert is_menu_configuration(spec, at_default) and not is_menu_configuration(spec, other)
    assert not any(is_menu_configuration(spec, p) for p in sweep_grid("er_sde", ["order=1,3"]))
