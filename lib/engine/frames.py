"""Reading a running loop: the one place that looks inside a suspended generator.

A generator stopped at its `yield` keeps its local variables in its frame. The Stepper, the checks
and the speed lesson read a loop's values through these functions, and only the names the loop
module lists as exposed (lib.twins.manual.EXPOSED, lib.twins.torch_side.EXPOSED): a test runs
every model and loss and sees each of those names in the frame at the yield.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from types import MappingProxyType

import numpy as np
import torch

from ..twins import manual, torch_side

EXPOSED = MappingProxyType(
    {"manual_loop": manual.EXPOSED + manual.EXPOSED_MLP, "torch_loop": torch_side.EXPOSED}
)


def function_of(gen: Iterator) -> Callable:
    """The function a generator is running (the loop function itself, as its module holds it)."""
    return gen.gi_frame.f_globals[gen.gi_code.co_name]


def arguments_of(gen: Iterator) -> dict:
    """The arguments of a generator not yet started: all its frame holds before the first next()."""
    if inspect.getgeneratorstate(gen) != inspect.GEN_CREATED:
        raise ValueError("arguments_of: the generator has already started")
    return dict(gen.gi_frame.f_locals)


def values_of(gen: Iterator, *names: str) -> dict:
    """The named locals of a loop suspended at its yield (the live objects, not copies)."""
    exposed = EXPOSED.get(gen.gi_code.co_name)
    unknown = [n for n in names if exposed is not None and n not in exposed]
    if unknown:
        raise KeyError(f"{gen.gi_code.co_name} does not expose {', '.join(unknown)}")
    f = gen.gi_frame.f_locals
    return {n: f[n] for n in names if n in f}


def step_values_of(gen: Iterator, names: tuple[str, ...]) -> dict[str, float]:
    """Numbers a loop sets only in some configurations, as floats, at its yield: step_lr (the lr
    the step used, with a scheduler), norm (the gradient's norm before clipping) and val_loss (the
    held-out rows' loss, on the steps that evaluate)."""
    f = gen.gi_frame.f_locals
    values = {n: float(f[n]) for n in names}
    # f_locals is a dict the frame keeps, holding a reference to every local (the step's tensors
    # and their graph) until the next read: emptied, they are freed when the loop rebinds them, as
    # in a loop nobody reads. Outside a tracer CPython 3.11 never writes this dict back to the
    # frame, and the next read fills it again. Measured: a third of lib.run's cost of reading
    # step_lr every step (lib.engine.lockstep) came from the kept references.
    f.clear()
    return values


def lr_holder(optimizer) -> tuple[dict, str]:
    """(mapping, key) such that mapping[key] is the lr an optimizer holds at any time: torch's
    param_groups[0] (a scheduler sets its "lr" in place) or the hand optimizer's attributes (its
    schedule sets .lr). One lookup per step, where a function call per step cost several."""
    groups = getattr(optimizer, "param_groups", None)
    return (groups[0], "lr") if groups is not None else (vars(optimizer), "lr")


def as_floats(values: list) -> np.ndarray:
    """Numbers a loop made over several steps, as float64: torch's 0-d tensors stacked in one op
    (a float() of each is a tensor op each), or numpy's and Python's floats."""
    if values and isinstance(values[0], torch.Tensor):
        return torch.stack(values).to(torch.float64).numpy()
    return np.array(values, dtype=np.float64)


def all_values(gen: Iterator) -> dict:
    """Every exposed local of a loop suspended at its yield that is set in this configuration (the
    mlp's layers only for the mlp)."""
    return values_of(gen, *EXPOSED[gen.gi_code.co_name])


def batch_rows(batches: Iterator, m: int) -> np.ndarray:
    """The rows of the training arrays that a batch generator just yielded: the hand loader's
    (lib.engine.data.loader, its `idx`) or the torch loader's (its sampler's last batch).

    m is the number of training rows; with a validation split they are not the Dataset's rows, so
    map the indices through them (lib.engine.data.split_rows' first array) to name Dataset rows.
    With accumulate > 1 it is the step's last micro-batch: the loader is read at the loop's yield.
    """
    f = batches.gi_frame.f_locals
    idx = f["idx"] if "idx" in f else f["order"].last
    return np.arange(m) if isinstance(idx, slice) else np.array(idx)


def scope_of(gen: Iterator) -> tuple[dict, dict]:
    """(globals, a copy of every local) of a loop suspended at its yield: what its own lines read
    when they are run again one phase at a time (lib.speed times them so)."""
    return gen.gi_frame.f_globals, dict(gen.gi_frame.f_locals)
