"""The model types of the hosts' two model families, as the hosts describe them: SD's discrete
sigma table (1000 entries, SD 1.x / SDXL) and a flow model's (shift 3, as SD3), each with its
sigma range; shared by the tests of the host schedules and of the solvers on them."""

from __future__ import annotations

import torch

from seeds_samplers.samplers.model_types import ModelType
from seeds_samplers.samplers.schedules import sd_sigma_table

_SD_TABLE = sd_sigma_table()
SD = ModelType("ve", float(_SD_TABLE[0]), float(_SD_TABLE[-1]), _SD_TABLE)
_t = torch.arange(1, 1001, dtype=torch.float64) / 1000
FLOW_TABLE = 3 * _t / (1 + 2 * _t)  # the timesteps t / 1000 shifted by 3
FLOW = ModelType("flow", float(FLOW_TABLE[0]), 1.0, FLOW_TABLE)
