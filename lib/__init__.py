"""Training-loop twins: a hand-written numpy loop and the torch loop, run in lockstep.

import lib
data = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
result = lib.run(data, lib.Config(lr=0.01, batch_size=32, iterations=1000))
result.max_abs_diff   # the two loops agree to about 1e-15

The package's folders are its layers; each imports only the ones listed before it:
    twins/    the two loops (manual.py, torch_side.py) and the hand-written optimizers
    engine/   Config, Dataset and the batch order, the lockstep run, stepping one step at a time
    lessons/  the checked explanations, pitfalls, the loss landscape, classification, speed
    io/       data sets, CSV files, exports
    charts/   the Altair pictures of all of the above
"""

import sys

from . import charts
from .engine import config, data, trace
from .engine.config import LOSSES, MAX_ITERATIONS, MODELS, Config
from .engine.data import Dataset, batch_indices, initial_weights, least_squares, weight_names
from .engine.lockstep import History, Result
from .engine.parallel import ParallelResult, run_parallel
from .io import csv_data, datasets, export
from .io.export import history_csv, history_json, to_script
from .io.notebook import to_notebook
from .io.torchrun import to_torchrun_script
from .lessons import classify, explain, landscape, pitfalls, speed
from .lessons.autograd_graph import autograd_graph
from .lessons.line_order import ORDER, run  # lib.run: lockstep's run, and order= for the lab
from .lessons.pitfalls import stability_limit
from .lessons.sweep import Sweep, sweep
from .twins import manual, optim
from .twins.manual import effective_lr_ratio, manual_loop, manual_mlp_loop
from .twins.optim import OPTIMIZERS
from .twins.torch_side import torch_loop

# Where each module lived before the layers had folders: `from lib.trace import Stepper` and the
# like keep working. (lib.run and lib.torch_loop were a module and a function at once; the
# function is the name that stays.)
_OLD_PLACES = (
    classify,
    config,
    csv_data,
    data,
    datasets,
    explain,
    export,
    landscape,
    manual,
    optim,
)
for _module in (*_OLD_PLACES, pitfalls, speed, trace):
    sys.modules.setdefault(f"{__name__}.{_module.__name__.rpartition('.')[2]}", _module)
del _module

__all__ = [
    "LOSSES",
    "MAX_ITERATIONS",
    "MODELS",
    "OPTIMIZERS",
    "ORDER",
    "Config",
    "Dataset",
    "History",
    "ParallelResult",
    "Result",
    "Sweep",
    "autograd_graph",
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
    "run_parallel",
    "speed",
    "stability_limit",
    "sweep",
    "to_notebook",
    "to_script",
    "to_torchrun_script",
    "torch_loop",
    "trace",
    "weight_names",
]
