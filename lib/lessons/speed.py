"""What one training step costs in each loop, phase by phase.

And why torch's costs more on small batches. Every number is a measurement on this machine, in
microseconds: the fastest of several tries, because interference from other processes only ever adds
time. Nothing here imports streamlit.
"""

from __future__ import annotations

import ast
import inspect
import math
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import CodeType, MappingProxyType

import numpy as np
import torch

from ..engine.config import Config
from ..engine.data import Dataset
from ..engine.frames import function_of, scope_of
from ..engine.lockstep import loops
from ..engine.source import parse
from . import explain

# The parts of one step, in the order the loops run them. "batch" is the for statement fetching the
# next batch; the middle five are the loops' phase comments (lib.explain.PHASES); "record" is the
# yield's value.
PHASES = ("batch", "zero_grad", "forward", "loss", "backward", "step", "record")
TORCH_LINES = MappingProxyType(
    {
        "batch": "for inputs, labels in batches",
        "zero_grad": "optimizer.zero_grad()",
        "forward": "outputs = net(inputs)",
        "loss": "loss = criterion(outputs, labels)",
        "backward": "loss.backward()",
        "step": "optimizer.step()",
        "record": "yield loss.item(), weights, read_grad()",
    }
)
WARMUP = 3  # untimed steps first: torch's first step creates every .grad and the optimizer's state
MIN_TRIES = 3  # tries of each number even past the budget
MAX_REPEATS = 10_000
CALLS = 100  # calls of the trivial op per try


@dataclass(frozen=True)
class StepCosts:
    """One step of each loop for one (data, Config), timed whole and phase by phase.

    In microseconds.
    """

    batch: int  # rows in a batch: min(batch_size, samples)
    features: int  # input features of the data
    n_params: int  # weights of the model
    threads: int  # torch.get_num_threads() while measuring
    repeats: int  # steps timed for each whole-step number; the fastest is kept
    manual_us: float  # the hand loop's whole step: next() of its generator, as lib.run calls it
    torch_us: float  # the torch loop's whole step, the same way
    # {"manual", "torch"}: the whole step on batches of one row, same model
    one_row_us: MappingProxyType
    # PHASES -> us: each phase's own source lines, run on the loop's own objects
    manual_phases: MappingProxyType
    torch_phases: MappingProxyType
    # PHASES -> aten operations dispatched in that phase of one step
    torch_ops: MappingProxyType | None
    # {"torch", "numpy"}: one add of two 1-element float64 arrays, per call
    call_us: MappingProxyType

    @property
    def ratio(self) -> float:
        """torch's time per step over numpy's."""
        return self.torch_us / self.manual_us

    @property
    def ops_per_step(self) -> int | None:
        """aten operations torch dispatches in one step (None where they could not be counted)."""
        return None if self.torch_ops is None else sum(self.torch_ops.values())


# ---------------------------------------------------------------- whole steps


def _check_repeats(repeats, budget) -> None:
    if isinstance(repeats, (bool, np.bool_)) or not isinstance(repeats, (int, np.integer)):
        raise ValueError(
            f"repeats must be a whole number from 1 to {MAX_REPEATS:,}; got {repeats!r}"
        )
    if not 1 <= repeats <= MAX_REPEATS:
        raise ValueError(
            f"repeats must be a whole number from 1 to {MAX_REPEATS:,}; got {repeats:,}"
        )
    number = isinstance(budget, (int, float, np.integer, np.floating)) and not isinstance(
        budget, (bool, np.bool_)
    )
    if not (number and math.isfinite(budget) and budget > 0):
        raise ValueError(f"budget must be a number of seconds > 0, e.g. 0.1; got {budget!r}")


def _warm_up(gen: Iterator, budget: float) -> None:
    """WARMUP untimed steps, or fewer (at least one) once a quarter of the budget has gone."""
    deadline = time.perf_counter() + budget / 4
    for _ in range(WARMUP):
        next(gen)
        if time.perf_counter() > deadline:
            break


def _fastest_step(gen: Iterator, repeats: int, budget: float) -> tuple[float, int]:
    """The fastest of up to `repeats` calls of next(gen), in us, and how many were timed."""
    clock = time.perf_counter_ns
    deadline = clock() + budget * 1e9
    best, tries = math.inf, 0
    while tries < repeats:
        t0 = clock()
        next(gen)
        best = min(best, clock() - t0)
        tries += 1
        if tries >= MIN_TRIES and clock() > deadline:
            break
    return best / 1e3, tries


def step_times(
    data: Dataset, cfg: Config, repeats: int = 30, budget: float = 0.1
) -> tuple[float, float, int]:
    """(numpy us, torch us, steps timed): each loop's fastest whole step.

    A whole step is next() of the generators lib.run zips. Each loop takes WARMUP untimed steps,
    then up to `repeats` timed ones, stopping early (after MIN_TRIES) once `budget` seconds have
    gone; the hand loop is timed first, then torch, each in one block.
    """
    _check_repeats(repeats, budget)
    manual, twin, _ = loops(data, cfg)
    with np.errstate(all="ignore"):
        for gen in (manual, twin):
            _warm_up(gen, budget)
        manual_us, tried_m = _fastest_step(manual, repeats, budget)
        torch_us, tried_t = _fastest_step(twin, repeats, budget)
    return manual_us, torch_us, min(tried_m, tried_t)


# ---------------------------------------------------------------- phase by phase


def _yield_value(func) -> str:
    """The source of what the loop function yields after each step."""
    tree = parse(textwrap.dedent(inspect.getsource(func)))
    yields = [node for node in ast.walk(tree) if isinstance(node, ast.Yield)]
    if len(yields) != 1:
        raise ValueError(f"{func.__name__} should yield in one place; found {len(yields)}")
    return ast.unparse(yields[0].value)


def phase_texts(gen: Iterator) -> dict[str, str]:
    """The source each phase of the loop behind gen runs, sliced from the loop function itself.

    zero_grad .. step are lib.explain.phase_source's phases (from one phase comment to the next),
    batch is what the for statement does (next(batches)), record is the value the loop yields.
    """
    func = function_of(gen)
    source = explain.phase_source(func)
    texts = ["next(batches)", *(source[marker] for marker in explain.PHASES), _yield_value(func)]
    return dict(zip(PHASES, texts, strict=True))


def _phase_code(gen: Iterator) -> list[tuple[str, CodeType]]:
    """Each phase of the loop behind gen, compiled."""
    name = function_of(gen).__name__
    return [
        (phase, compile(text, f"<{name}: {phase}>", "exec"))
        for phase, text in phase_texts(gen).items()
    ]


def _time_phases(gen: Iterator, repeats: int, budget: float) -> dict[str, float]:
    """The fastest run of each phase, in us, on the objects of gen's suspended loop.

    It changes those objects. A phase is exec'd in a copy of the loop's local variables, so its
    names mean what they mean in the loop: the same net, optimizer, criterion and batch. Each try
    runs every phase once, in order, so backward() always has a fresh graph. The cost of exec'ing
    nothing is subtracted.
    """
    scope, names = scope_of(gen)
    codes = _phase_code(gen)
    nothing = compile("pass", "<nothing>", "exec")
    clock = time.perf_counter_ns
    best = dict.fromkeys(PHASES, math.inf)
    empty = math.inf
    deadline = clock() + budget * 1e9
    for tries in range(1, repeats + 1):
        for name, code in codes:
            t0 = clock()
            exec(code, scope, names)
            best[name] = min(best[name], clock() - t0)
        t0 = clock()
        exec(nothing, scope, names)
        empty = min(empty, clock() - t0)
        if tries >= MIN_TRIES and clock() > deadline:
            break
    return {name: max(0.0, ns - empty) / 1e3 for name, ns in best.items()}


def _count_ops(gen: Iterator) -> dict[str, int] | None:
    """aten operations each phase of one torch step dispatches.

    None if this torch cannot count them.
    """
    try:
        from torch.utils._python_dispatch import TorchDispatchMode
    except ImportError:
        return None

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            # The profiler's record_function markers go through the dispatcher too; they are not
            # tensor work.
            if func.namespace == "aten":
                self.ops += 1
            return func(*args, **(kwargs or {}))

    scope, names = scope_of(gen)
    counts = {}
    for name, code in _phase_code(gen):
        with Count() as count:
            exec(code, scope, names)
        counts[name] = count.ops
    return counts


def _call_us(repeats: int) -> dict[str, float]:
    """One add of two 1-element float64 arrays, in us per call: torch.add and np.add."""
    a, b = torch.ones(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    x, y = np.ones(1), np.ones(1)
    out = {}
    clock = time.perf_counter_ns
    for name, add, u, v in (("torch", torch.add, a, b), ("numpy", np.add, x, y)):
        best = math.inf
        for _ in range(max(MIN_TRIES, min(repeats, 20))):
            t0 = clock()
            for _ in range(CALLS):
                add(u, v)
            best = min(best, clock() - t0)
        out[name] = best / CALLS / 1e3
    return out


def step_costs(data: Dataset, cfg: Config, repeats: int = 30, budget: float = 0.1) -> StepCosts:
    """Time one training step of each loop for this (data, Config).

    Whole, phase by phase, and on one row. Each part stops early (after MIN_TRIES) once `budget`
    seconds have gone, so the whole measurement takes a few times `budget` (about 0.1 s for a small
    model; longer if one step alone takes longer). The loops run with however many threads torch has
    (torch.set_num_threads); the app uses one.
    """
    manual_us, torch_us, tried = step_times(data, cfg, repeats, budget)
    batch = min(cfg.batch_size, data.m)
    if batch == 1:
        one_row = {"manual": manual_us, "torch": torch_us}
    else:
        m1, t1, _ = step_times(data, cfg.replace(batch_size=1), repeats, budget / 2)
        one_row = {"manual": m1, "torch": t1}
    manual, twin, init = loops(data, cfg)
    with np.errstate(all="ignore"):
        for gen in (manual, twin):
            _warm_up(gen, budget)
        manual_phases = _time_phases(manual, repeats, budget / 2)
        torch_phases = _time_phases(twin, repeats, budget / 2)
        ops = _count_ops(twin)
    return StepCosts(
        batch=batch,
        features=data.n,
        n_params=len(init),
        threads=torch.get_num_threads(),
        repeats=tried,
        manual_us=manual_us,
        torch_us=torch_us,
        one_row_us=MappingProxyType(one_row),
        manual_phases=MappingProxyType(manual_phases),
        torch_phases=MappingProxyType(torch_phases),
        torch_ops=None if ops is None else MappingProxyType(ops),
        call_us=MappingProxyType(_call_us(repeats)),
    )


# ---------------------------------------------------------------- in words


def us(x: float) -> str:
    """A time in microseconds as the sentence shows it.

    Three significant figures at most, no exponent.
    """
    if x >= 10_000:
        return f"{x / 1e3:,.1f} ms"
    if x >= 100:
        return f"{x:,.0f} µs"
    if x >= 10:
        return f"{x:.1f} µs"
    return f"{x:.2f} µs"


def times(r: float) -> str:
    """A ratio as the sentence shows it: 14×, 3.8×."""
    return f"{r:.0f}×" if r >= 10 else f"{r:.1f}×"


PHASE_NAMES = MappingProxyType(
    {
        "batch": ("fetching the batch", "numpy's fetch"),
        "zero_grad": ("optimizer.zero_grad()", "the hand reset"),
        "forward": ("the forward pass", "the hand forward pass"),
        "loss": ("the loss", "the hand loss"),
        "backward": ("backward()", "the hand-written gradient"),
        "step": ("optimizer.step()", "the hand update"),
        "record": ("copying the results out", "the hand loop's yield"),
    }
)


def speed_sentence(costs: StepCosts) -> str:
    """Why torch's step takes longer (or not) than numpy's here, in words.

    With the numbers just measured. Each claim is conditional on the measurement: "fixed" only when
    a one-row batch's torch step takes at least half as long as this one's; the phase named is the
    one with the largest torch - numpy gap.
    """
    if not isinstance(costs, StepCosts):
        raise ValueError(
            "costs must be what lib.speed.step_costs returns (a StepCosts); "
            f"got {type(costs).__name__}"
        )
    c = costs
    thread = f"{c.threads} thread" + ("s" if c.threads != 1 else "")
    shape = (
        f"batches of {c.batch:,} rows, {c.n_params:,} weights, {thread}, "
        f"fastest of {c.repeats} steps each"
    )
    if c.torch_us <= c.manual_us:
        return (
            f"Here torch's step took {us(c.torch_us)} against numpy's {us(c.manual_us)} "
            f"({times(c.manual_us / c.torch_us)} faster; {shape})."
        )
    first = (
        f"Torch took {times(c.ratio)} numpy's time per step here "
        f"({us(c.torch_us)} against {us(c.manual_us)}; {shape})"
    )
    one_row, share = c.one_row_us["torch"], c.one_row_us["torch"] / c.torch_us
    fixed = c.batch == 1 or share >= 0.5
    if c.batch > 1 and fixed:
        most = "nearly all" if share >= 0.9 else "most"
        first += (
            f", and {most} of it is a fixed cost that does not grow with the batch: "
            f"with one-row batches its step took {us(one_row)} ({share:.0%} as long)"
        )
    elif c.batch > 1:
        first += (
            f"; at this size most of it grows with the batch: with one-row batches its step took "
            f"{us(one_row)} ({share:.0%} as long)"
        )
    return f"{first}{_where_the_time_goes(c, fixed)}"


def _where_the_time_goes(c: StepCosts, fixed: bool) -> str:
    """The speed sentence's second part: the cost of one tiny call, and the phase that gaps most."""
    call = f"a 1-element torch.add ({us(c.call_us['torch'])}; np.add {us(c.call_us['numpy'])})"
    biggest = max(PHASES, key=lambda p: c.torch_phases[p] - c.manual_phases[p])
    torch_name, hand_name = PHASE_NAMES[biggest]
    gap = f"{torch_name} took {us(c.torch_phases[biggest])}"
    if c.torch_ops is not None:
        gap += f" for {_operations(c.torch_ops[biggest])}"
    gap += f", against {us(c.manual_phases[biggest])} for {hand_name}"
    if c.torch_ops is None:
        return f". Even a call as small as {call} costs torch more; the largest gap: {gap}."
    ops = c.ops_per_step
    priced = (
        f"Its {ops} tensor operations would cost about {us(ops * c.call_us['torch'])} "
        f"at the price of {call}"
    )
    if not fixed:
        return f". {priced}; the largest gap: {gap}."
    second = f"{priced}; the rest is the machinery around them: {gap}"
    idle = c.torch_phases["zero_grad"]
    if biggest != "zero_grad" and c.torch_ops["zero_grad"] == 0 and idle >= 1:
        second += f", and optimizer.zero_grad() took {us(idle)} with no tensor operation at all"
    return f". {second}."


def _operations(k: int) -> str:
    return "one tensor operation" if k == 1 else f"{k} tensor operations"
