"""Training-loop twins: a hand-written numpy loop and the torch loop, run in lockstep.

import lib
data = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
result = lib.run(data, lib.Config(lr=0.01, batch_size=32, iterations=1000))
result.max_abs_diff   # the two loops agree to about 1e-15
"""

from . import charts, classify, csv_data, datasets, explain, pitfalls, speed, trace
from .config import LOSSES, MAX_ITERATIONS, MODELS, Config
from .data import Dataset, batch_indices, initial_weights, least_squares, weight_names
from .export import history_csv, history_json, to_script
from .manual import effective_lr_ratio, manual_loop, manual_mlp_loop
from .optim import OPTIMIZERS
from .pitfalls import stability_limit
from .run import History, Result, run
from .torch_loop import torch_loop

__all__ = [
    "LOSSES",
    "MAX_ITERATIONS",
    "MODELS",
    "OPTIMIZERS",
    "Config",
    "Dataset",
    "History",
    "Result",
    "batch_indices",
    "charts",
    "classify",
    "csv_data",
    "datasets",
    "effective_lr_ratio",
    "explain",
    "history_csv",
    "history_json",
    "initial_weights",
    "least_squares",
    "manual_loop",
    "manual_mlp_loop",
    "pitfalls",
    "run",
    "speed",
    "stability_limit",
    "to_script",
    "torch_loop",
    "trace",
    "weight_names",
]
