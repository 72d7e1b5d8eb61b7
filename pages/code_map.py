"""Code map: the five lines of the torch training step beside their hand-written twins, with live
values."""

import dataclasses
import inspect
import math

import streamlit as st

import lib
from lib import explain
from lib.engine.trace import Stepper
from lib.lessons.autograd_graph import step_graph
from pages.parts import cached
from pages.parts.cached import fingerprint, twin_phases
from pages.parts.labels import LOSS_LABELS
from pages.parts.links import literal
from pages.parts.navigation import PITFALLS_LINK, through_navigation
from pages.parts.sidebar import sidebar_config

# the page steps the loops up to the picked step; longer runs are cut to this
MAX_ITERATIONS = 10_000
HELD, FAILED = ":green[**✓**]", ":red[**✗**]"


@st.cache_data(
    max_entries=32,
    show_spinner="Checking every sentence against torch…",
    hash_funcs={lib.Config: repr},
)
def evidence(
    _data: lib.Dataset, data_key: tuple, cfg: lib.Config, t: int, _stepper: Stepper
) -> dict[str, explain.Evidence]:
    """Every claim's check on step t of this run (numpy-level results, so they cache; data_key
    names the data).

    _stepper is the page's own Stepper, standing on step t: the checks read it instead of running to
    t again.
    """
    return explain.verify_all(_data, cfg, _stepper if _stepper.step == t else t)


@st.cache_data(max_entries=32, show_spinner=False, hash_funcs={lib.Config: repr})
def step_size_ratio(
    _data: lib.Dataset, data_key: tuple, cfg: lib.Config, other: str
) -> explain.Evidence:
    return explain.effective_lr(_data, cfg, other)


@st.cache_data(
    max_entries=16,
    show_spinner="Running the whole run once, to see where the loops agree…",
    hash_funcs={lib.Config: repr},
)
def whole_run(_data: lib.Dataset, data_key: tuple, cfg: lib.Config) -> tuple[str, str | None]:
    """From one lib.run of the whole run: where the two loops agree, and a warning if its loss
    blows up."""
    result = lib.run(_data, cfg)
    return explain.agreement_text(result), explain.growth_warning(_data, result)


def key_line(code: str, wanted: str) -> str:
    """The row's key line as written in this loop: `wanted` when the code has it, else its first
    line of code."""
    lines = [
        line.split("  #")[0].strip()
        for line in code.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    if not lines:
        return "(no line: this configuration skips it)"
    return wanted if wanted in lines else lines[0]


def values(pairs: list[tuple[str, object]]) -> str:
    """A row's live values as `name = value` lines, like a debugger's watch list."""
    return "\n".join(f"{name} = {explain.show(value)}" for name, value in pairs)


def claim(c: explain.Claim, e: explain.Evidence | None, cfg: lib.Config) -> None:
    """One sentence with its check: ✓ or ✗, and the numbers the check measured; nothing where it
    does not apply."""
    if e is None:
        return
    if not e.applies:
        st.caption(f"Left out here: {c.key.replace('_', ' ')}, since {e.note}.")
        return
    measured = " · ".join(f"{label}: `{explain.show(v, 6)}`" for label, v in e.measured.items())
    mark = HELD if e.ok else f"{FAILED} **does not hold here:**"
    st.markdown(f"{mark} {c.sentence(cfg)}")
    st.caption(f"Measured ({e.note}): {measured}")


through_navigation()
st.title("Code map")
st.markdown(
    "The five lines of a PyTorch training step, each beside its hand-written twin. The code is "
    "read from the two loop functions that the app runs, so it is never a copy, less the branches "
    "the configuration in the sidebar does not take (the whole functions are at the bottom). "
    "Under each row: what the line computed at the step you pick, in a real run of the "
    "configuration in the sidebar, and the exact explanation — each sentence checked against "
    f"torch right now ({HELD} held, {FAILED} did not). After the five, the rest of the loop "
    "this configuration runs: the DataLoader, `net.train()` / `net.eval()`, and, where they are "
    "switched on, gradient accumulation, clipping, the learning-rate schedule and validation."
)

with st.expander("The classic five-line mapping, and where it is not one for one"):
    st.markdown(
        "The mapping usually taught pairs each torch line with a line of a per-sample "
        "gradient-descent loop:\n"
        "```python\n"
        "optimizer.zero_grad()              # d_weights = [0] * n\n"
        "outputs = net(inputs)              # h = dot(input[k], weights)\n"
        "loss = criterion(outputs, labels)  # loss += (label[k] - h) ** 2 / 2\n"
        "loss.backward()                    # d_weights[j] += (label[k] - h) * input[k][j]\n"
        "optimizer.step()                   # weights[j] += alpha * d_weights[j] / m\n"
        "```\n"
        "It is a correspondence of roles, not of arithmetic:\n"
        "- The classic loop goes sample by sample (`for k in range(m)`) where torch makes one "
        "batched call; the loops on this page use one matrix product for the batch, as torch "
        "does.\n"
        "- Its loss is ½ · the *sum* of squared errors, and the division by m sits in its update "
        "line; `nn.MSELoss()` takes the *mean* (the /m is in the loss) and has no ½, so its "
        "gradient is twice as large (the `half_mse` convention here is the classic one).\n"
        "- Its `h` has no bias, while `nn.Linear` has one by default (`bias=True`).\n"
        "- Its `d_weights` is the *negative* gradient (built from `label - h`), hence `+ alpha` "
        "in the update; torch's `.grad` is the gradient itself and `step()` subtracts. The hand "
        "loop here keeps that sign and says so in its name: `neg_grad`.\n"
        "- `optimizer.zero_grad()` sets `.grad` to `None`, not to zeros; the next `backward()` "
        "stores a fresh gradient there."
    )

picked = sidebar_config("code_map", own=("map_step",))


def show_map(data: lib.Dataset, cfg: lib.Config) -> None:
    """The five rows, their code, values and checked sentences, for this data and Config."""
    if cfg.iterations > MAX_ITERATIONS:
        st.caption(
            f"This page follows the first {MAX_ITERATIONS:,} of the {cfg.iterations:,} iterations."
        )
        cfg = first_steps(cfg)
    data_key = fingerprint(data)
    stepper = page_stepper(data, cfg, data_key)
    wanted = picked_step(cfg.iterations - 1)
    step = stepper.run_to(int(wanted))
    if step.t != wanted:
        st.warning(f"The run diverged at step {step.t}, so the values shown are that step's.")
    agreement, growth = whole_run(data, data_key, cfg)
    if growth is not None:
        st.warning(growth)
        st.markdown(
            "See why in the [Pitfalls lab, tab 4: a learning rate above the "
            f"limit]({PITFALLS_LINK})."
        )
    manual_fn, torch_fn = stepper.functions
    view = View(
        data,
        data_key,
        cfg,
        stepper,
        step,
        *twin_phases(data, cfg),
        evidence(data, data_key, cfg, step.t, stepper),
        agreement,
    )
    left, right = st.columns(2)
    left.markdown(f"### Hand-written: `lib.{manual_fn.__name__}` (numpy)")
    right.markdown(f"### PyTorch: `lib.{torch_fn.__name__}`")
    sizes = [len(rows) for rows in step.manual.micro_indices] or [len(step.manual.indices)]
    batch = (
        f"{len(sizes)} micro-batches of {', '.join(map(str, sizes))} samples (the values below "
        "are the last one's)"
        if cfg.accumulate > 1
        else f"a batch of {sizes[-1]} samples"
    )
    st.caption(
        f"Step {step.t}: {batch} · model {cfg.model} · "
        f"loss convention {LOSS_LABELS[cfg.loss]} · optimizer {cfg.optimizer}."
    )
    with st.expander("Before the loop: the model, the loss, the optimizer"):
        left, right = st.columns(2)
        left.code(view.hand[explain.SETUP], language="python", wrap_lines=True)
        right.code(view.twin[explain.SETUP], language="python", wrap_lines=True)
    for row in explain.ROWS:
        show_row(row, view)
    whole_loop(view)
    st.divider()
    with st.expander("The two functions, whole"):
        left, right = st.columns(2)
        left.code(inspect.getsource(manual_fn), language="python")
        right.code(inspect.getsource(torch_fn), language="python")


def first_steps(cfg: lib.Config) -> lib.Config:
    """The first MAX_ITERATIONS steps of the run cfg describes: the same schedule (its lengths
    kept, not shortened with the run) and the same validation interval."""
    kept = {"scheduler_kwargs": dict(cfg.scheduler_kwargs)} if cfg.scheduler is not None else {}
    return cfg.replace(iterations=MAX_ITERATIONS, eval_every=cfg.eval_interval, **kept)


@dataclasses.dataclass(frozen=True)
class View:
    """What every row of the map reads: the run, the step shown, both loops' code, the checks."""

    data: lib.Dataset
    data_key: tuple
    cfg: lib.Config
    stepper: Stepper
    step: object  # the Stepper's record of the step shown
    hand: dict  # phase -> code of the hand loop
    twin: dict  # phase -> code of the torch loop
    checks: dict  # claim key -> explain.Evidence
    agreement: str  # where the two loops agree over the whole run, in words


def page_stepper(data: lib.Dataset, cfg: lib.Config, data_key: tuple) -> Stepper:
    """The page's Stepper, kept in the session; a new one for new data or a new Config."""
    if st.session_state.get("map_config") != (data_key, cfg):
        st.session_state["map_stepper"] = Stepper(data, cfg)
        st.session_state["map_config"] = (data_key, cfg)
    return st.session_state["map_stepper"]


def picked_step(last: int) -> int:
    """The step to show, from the number box (its value is in the link as map_step)."""
    # Step 1 by default: at step 0 the reset has nothing to clear yet. The step is in the URL
    # (map_step), so a link opens it. A float widget shown without decimals: a link's inf or text
    # falls back to the default instead of crashing an int widget; out of range is clamped here.
    # read before the widget, which drops a value it cannot take
    linked = st.query_params.get_all("map_step")
    asked = st.session_state.get("map_step", 1.0)
    st.session_state["map_step"] = (
        float(min(max(round(asked), 0), last)) if math.isfinite(asked) else 1.0
    )
    wanted = st.number_input(
        "Show the values of step",
        0.0,
        float(last),
        step=1.0,
        format="%.0f",
        key="map_step",
        bind="query-params",
        help=f"Steps count from 0; this run has 0 – {last}. The step is in the page's link.",
    )
    wanted = round(wanted)
    if linked and linked[-1].strip() != str(wanted) and linked[-1].strip() != f"{wanted}.0":
        st.warning(
            f"The link's step, map_step={literal(linked[-1])}, is not a step of this run (a "
            f"whole number from 0 to {last:,}), so step {wanted:,} is shown."
        )
    return wanted


@st.cache_data(max_entries=32, show_spinner=False, hash_funcs={lib.Config: repr})
def backward_graph(_data: lib.Dataset, data_key: tuple, cfg: lib.Config, step: int) -> str:
    """DOT of the graph loss.backward() walks at this step (its nodes and the shapes they saved)."""
    return step_graph(_data, cfg, step)


def show_graph(view: View) -> None:
    """The backward row's drawing: the autograd graph of the step on show."""
    with st.expander("The graph `loss.backward()` walks at this step"):
        try:
            dot = backward_graph(view.data, view.data_key, view.cfg, view.step.t)
        except ValueError as err:
            st.info(f"No graph to draw for this step: {err}")
            return
        st.graphviz_chart(dot)
        st.caption(
            "From `loss.grad_fn` through each node's `next_functions` to the `AccumulateGrad` "
            "leaves (shaded, named by parameter), each box with the shapes it saved; the hand "
            "loop's backward pass above, on the left, computes the same derivatives."
        )


def show_row(row: explain.Row, view: View) -> None:
    """One of the five rows: both loops' code and values, then the explanation and its checks."""
    st.divider()
    st.markdown(f"### {row.title}: `{key_line(view.hand[row.phase], row.manual)}` ↔ `{row.torch}`")
    left, right = st.columns(2)
    left.code(view.hand[row.phase], language="python", wrap_lines=True)
    right.code(view.twin[row.phase], language="python", wrap_lines=True)
    hand_values, twin_values = explain.row_values(view.step, row.key)
    left.code(values(hand_values), language="python", wrap_lines=True)
    right.code(values(twin_values), language="python", wrap_lines=True)
    if row.key == "update":
        optimizer_step(left, right, view)
    if row.key == "backward":
        show_graph(view)
    st.markdown(explain.row_text(row, view.cfg))
    for c in explain.claims_for(row.key, view.cfg):
        claim(c, view.checks.get(c.key), view.cfg)
    if row.key == "update" and view.cfg.loss != "bce":
        if view.cfg.clip_grad_norm is None and view.cfg.accumulate == 1:
            loss_comparison(view)
        else:
            st.caption(
                "The step-size comparison of two loss conventions is left out here: clipping "
                "scales both steps to the same norm, and with accumulation the sum convention's "
                "factor is each micro-batch's size."
            )


# How each row of the rest of the loop is switched on (lib.Config's fields).
SWITCHES = {
    "accumulate": "`accumulate` > 1",
    "clip": "`clip_grad_norm`",
    "schedule": "a `scheduler`",
    "validation": "`val_fraction` > 0",
}


def loop_texts(data: lib.Dataset, cfg: lib.Config) -> tuple[str | None, str | None]:
    """The two loops' whole text as this configuration runs them (the cache the twin table uses);
    (None, None) if it cannot be made: the rows then read the whole functions."""
    try:
        return cached.twin_texts(data, cfg)
    except (KeyError, ValueError, SyntaxError):
        return None, None


def whole_loop(view: View) -> None:
    """The rows of the whole loop's lines that this configuration runs, each beside its twin."""
    cfg = view.cfg
    st.divider()
    st.markdown("## The rest of the loop")
    st.markdown(
        "The lines a real loop has beyond the five, each beside what the hand loop does instead, "
        "read from the code that runs; the sentences are checked on this run at the step picked."
    )
    absent = [r for r in explain.LOOP_ROWS if not r.shown(cfg)]
    if absent:
        st.caption(
            "Not in this configuration, so not shown: "
            + "; ".join(f"{r.title.lower()} (switched on by {SWITCHES[r.key]})" for r in absent)
            + "."
        )
    texts = loop_texts(view.data, cfg)
    for row in explain.loop_rows_for(cfg):
        show_loop_row(row, view, texts)


def show_loop_row(row: explain.LoopRow, view: View, texts: tuple) -> None:
    """One line of the whole loop: both loops' code (and what it calls), values, text, checks."""
    st.divider()
    st.markdown(f"### {row.title}: `{row.manual}` ↔ `{row.torch}`")
    hand, twin = explain.loop_row_code(row, view.cfg, *texts)
    left, right = st.columns(2)
    for column, blocks in ((left, hand), (right, twin)):
        for k, (title, code) in enumerate(blocks):
            column.caption(f"`{title[3:]}`, as this configuration runs it" if k == 0 else
                           f"`{title}`, read from its source")  # fmt: skip
            column.code(code, language="python", wrap_lines=True)
    hand_values, twin_values = explain.loop_row_values(view.step, row.key)
    if hand_values or twin_values:
        left.code(values(hand_values), language="python", wrap_lines=True)
        right.code(values(twin_values), language="python", wrap_lines=True)
    st.markdown(explain.loop_row_text(row, view.cfg, view.data))
    for c in explain.claims_for(row.key, view.cfg):
        claim(c, view.checks.get(c.key), view.cfg)


def optimizer_step(left, right, view: View) -> None:
    """The optimizer's own update, beside the torch optimizer it mirrors."""
    cfg = view.cfg
    manual_optimizer, torch_optimizer = view.stepper.optimizers
    kind = type(manual_optimizer)
    name = type(torch_optimizer).__name__
    left.markdown(f"What `optimizer.step(-neg_grad)` runs: `lib.optim.{kind.step.__qualname__}`")
    left.code(inspect.getsource(kind.step), language="python")
    settings = "".join(f", {k}={v!r}" for k, v in cfg.optimizer_kwargs.items())
    right.markdown(f"What `optimizer.step()` runs: `torch.optim.{name}.step`")
    right.code(
        f"optimizer = torch.optim.{name}(net.parameters(), lr={cfg.lr!r}{settings})",
        language="python",
        wrap_lines=True,
    )
    right.markdown(
        "Torch's `step()` follows the algorithm in [its "
        f"documentation](https://pytorch.org/docs/stable/generated/torch.optim.{name}.html); "
        f"`{kind.step.__qualname__}` on the left does the same arithmetic in the same order, in "
        "numpy, on the flat weight vector. " + view.agreement
    )
    if view.step.optimizer_state:
        optimizer_state(left, right, view.step)


def optimizer_state(left, right, step) -> None:
    """What each optimizer carries to the next step: the hand attributes beside torch's state."""
    left.code(
        values([(f"optimizer.{attr}", hand) for attr, _, hand, _ in step.optimizer_state]),
        language="python",
        wrap_lines=True,
    )
    right.code(
        values(
            [(f"optimizer.state[·]['{key}']", twin) for _, key, _, twin in step.optimizer_state]
        ),
        language="python",
        wrap_lines=True,
    )
    counters = ""
    if step.step_counts:
        counts = ", ".join(f"{hand:g}" for _, _, hand, _ in step.step_counts)
        counters = (
            f" The step counters count the steps taken, from 1: after step {step.t} (this page "
            f"counts from 0) they hold {counts}."
        )
    st.caption(
        f"The optimizer's state after step {step.t}, which the next step builds on: the hand "
        "optimizer's attributes, and torch's per-parameter `optimizer.state` flattened in the "
        "weights' order." + counters
    )


def loss_comparison(view: View) -> None:
    """The first step of torch's loss against a hand loop on another squared loss, predicted and
    measured."""
    cfg = view.cfg
    others = [name for name in ("mse", "half_mse", "sse") if name != cfg.loss]
    other = st.selectbox(
        f"Compare the step of torch's {cfg.loss!r} with a hand loop on",
        others,
        format_func=LOSS_LABELS.get,
        key="map_other",
    )
    e = step_size_ratio(view.data, view.data_key, cfg, other)
    # adaptive: the factor differs from 1 late
    digits = 10 if cfg.optimizer in explain.ADAPTIVE else 6
    predicted, measured = (
        explain.show(e.measured.get(k), digits) for k in ("predicted", "measured")
    )
    st.markdown(
        f"First step at batch size {min(cfg.batch_size, view.data.m)}, torch on {cfg.loss!r} "
        f"over a hand loop on {other!r}, with "
        f"`torch.optim.{lib.optim.TORCH_NAMES[cfg.optimizer]}`: the gradients differ by "
        f"`lib.effective_lr_ratio` = **{explain.show(e.measured.get('gradient factor c'), 6)}**; "
        f"the step, predicted from the optimizer's first-step formula: **{predicted}**, measured "
        f"from one real step of both loops: **{measured}** {HELD if e.ok else FAILED}"
    )


# No st.stop(): after a run ended by it, the next rerun put the shared sidebar back to its defaults
# (seen with AppTest and streamlit 1.67 when another page has the same widget keys).
if picked is not None:
    show_map(*picked)
