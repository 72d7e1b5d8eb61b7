"""What breaks if you move a line: the lines of one training step in the order the learner picks,
run by both loops, beside the loop as written; and the graph loss.backward() walks."""

from types import MappingProxyType

import numpy as np
import streamlit as st

import lib
from lib.charts import series_chart
from lib.lessons import autograd_graph as graphs
from lib.lessons import line_order as lo
from lib.twins import manual, torch_side
from pages.parts.links import literal
from pages.parts.navigation import through_navigation

state = st.session_state  # this page's keys start with "order_"
ORDER_KEY = "order_lines"  # the order on screen, a list of line names; the URL's ?order= too
DATA_ARGS = MappingProxyType({"m": 120, "n": 2, "noise": 0.1, "seed": 0})
MISTAKES = MappingProxyType({  # the classic misorderings, one click each: button -> order
    "zero_grad() between backward() and step()": (
        "forward", "loss", "backward", "zero_grad", "clip", "step", "scheduler", "validation",
    ),
    "step() before backward()": (
        "step", "zero_grad", "forward", "loss", "backward", "clip", "scheduler", "validation",
    ),
    "clip before backward()": (
        "zero_grad", "forward", "loss", "clip", "backward", "step", "scheduler", "validation",
    ),
    "scheduler.step() before step()": (
        "zero_grad", "forward", "loss", "backward", "clip", "scheduler", "step", "validation",
    ),
    "validation without torch.no_grad()": (*lo.ORDER[:-1], lo.WITH_GRAD),
})  # fmt: skip


@st.cache_data(max_entries=4, show_spinner=False)
def dataset() -> lib.Dataset:
    return lib.datasets.linear(**DATA_ARGS)


def config() -> lib.Config:
    """The Config the controls describe."""
    left, middle, right = st.columns(3)
    model = left.selectbox("model", ("linear", "mlp"), key="order_model", bind="query-params")
    optimizer = middle.selectbox(
        "optimizer", ("sgd", "adam"), key="order_optimizer", bind="query-params"
    )
    iterations = right.number_input(
        "iterations", 2, 300, 40, key="order_iterations", bind="query-params"
    )
    lr = left.number_input(
        "learning rate", 0.001, 1.0, 0.05, step=0.01, format="%.3f", key="order_lr",
        bind="query-params",
    )  # fmt: skip
    clip = middle.toggle(
        "clip_grad_norm_(max_norm=0.5)", True, key="order_clip", bind="query-params"
    )
    schedule = right.toggle(
        "StepLR(step_size=1, gamma=0.9)", True, key="order_schedule", bind="query-params"
    )
    validation = left.toggle(
        "hold out 20 % of the rows for validation", True, key="order_validation",
        bind="query-params",
    )  # fmt: skip
    return lib.Config(
        lr=float(lr), batch_size=16, iterations=int(iterations), model=model, hidden=4,
        optimizer=optimizer, clip_grad_norm=0.5 if clip else None,
        scheduler="step" if schedule else None,
        scheduler_kwargs={"step_size": 1, "gamma": 0.9} if schedule else {},
        val_fraction=0.2 if validation else 0.0, eval_every=1 if validation else None,
    )  # fmt: skip


def order_from_link() -> None:
    """The session's first run: the order the link names, or the loop as written (with a note in
    words when the link's order is not one)."""
    if ORDER_KEY in state:
        return
    state[ORDER_KEY] = list(lo.ORDER)
    raw = st.query_params.get("order")
    if raw is None:
        return
    names = [part.strip() for part in raw.split(",")]
    try:
        lo.parse_order(names)
    except ValueError as error:
        state["order_link_note"] = (
            f"The link's order {literal(raw[:200])} is not an order of this step's lines "
            f"({error}); showing the loop as written."
        )
        return
    state[ORDER_KEY] = names


def set_order(names: list[str]) -> None:
    state[ORDER_KEY] = list(names)
    st.query_params["order"] = ",".join(names)


def move(position: int, by: int) -> None:
    names = list(state[ORDER_KEY])
    names[position], names[position + by] = names[position + by], names[position]
    set_order(names)


def toggle_no_grad() -> None:
    names = list(state[ORDER_KEY])
    swap = {"validation": lo.WITH_GRAD, lo.WITH_GRAD: "validation"}
    set_order([swap.get(name, name) for name in names])


def editor(cfg: lib.Config) -> list[str]:
    """The step's lines in the order on screen, each with ↑ ↓ buttons (and its hand twin)."""
    names = state[ORDER_KEY]
    twins = st.toggle("show each line's hand twin beside it", False, key="order_twins")
    widths = (0.4, 4, 4, 0.5, 0.5) if twins else (0.4, 8, 0.5, 0.5)
    head = st.columns(widths)
    head[1].markdown("**torch loop**")
    if twins:
        head[2].markdown("**hand loop (its twin)**")
    for position, name in enumerate(names):
        row = st.columns(widths, vertical_alignment="center")
        row[0].markdown(f"**{position + 1}**")
        row[1].code(lo.line_source("torch", name), language="python", wrap_lines=True)
        if twins:
            row[2].code(lo.line_source("manual", name), language="python", wrap_lines=True)
        row[-2].button(
            "↑", key=f"order_up_{name}", on_click=move, args=(position, -1),
            disabled=position == 0, help=f"Move {lo.TITLES[name]} up",
        )  # fmt: skip
        row[-1].button(
            "↓", key=f"order_down_{name}", on_click=move, args=(position, 1),
            disabled=position == len(names) - 1, help=f"Move {lo.TITLES[name]} down",
        )  # fmt: skip
    idle = idle_lines(cfg)
    if idle:
        st.caption(f"Off in this configuration (their `if` is false, so they do nothing): {idle}.")
    return list(names)


def idle_lines(cfg: lib.Config) -> str:
    off = {"clip": cfg.clip_grad_norm is None, "scheduler": cfg.scheduler is None}
    off["validation"] = cfg.val_fraction == 0
    return ", ".join(lo.TITLES[name] for name, idle in off.items() if idle)


def shortcuts() -> None:
    st.markdown("**Classic mistakes**, one click each (then move any line yourself):")
    columns = st.columns(len(MISTAKES) + 1)
    for column, (label, names) in zip(columns, MISTAKES.items(), strict=False):
        column.button(label, key=f"order_mistake_{label}", on_click=set_order, args=(names,))
    columns[-1].button(
        "the loop as written", key="order_reset", on_click=set_order, args=(list(lo.ORDER),)
    )
    with_grad = lo.WITH_GRAD in state[ORDER_KEY]
    st.toggle(
        "leave out the validation block's `with torch.no_grad():`", with_grad,
        key=f"order_no_grad_{with_grad}", on_change=toggle_no_grad,
    )  # fmt: skip


@st.cache_data(max_entries=32, show_spinner="Running both loops in this order…")
def measured(order: tuple[str, ...], **cfg) -> lo.Lab:
    return lo.lab(dataset(), lib.Config(**cfg), order)


def cfg_dict(cfg: lib.Config) -> dict:
    fields = ("lr", "batch_size", "iterations", "model", "hidden", "optimizer", "clip_grad_norm")
    fields += ("scheduler", "val_fraction", "eval_every")
    out = {name: getattr(cfg, name) for name in fields}
    out["scheduler_kwargs"] = dict(cfg.scheduler_kwargs)
    return out


def verdicts(found: lo.Lab, names: list[str]) -> None:
    """What broke, in words, measured on the run; and the two loops' agreement."""
    result, right = found.chosen.result, found.correct.result
    if tuple(names) == lo.ORDER:
        st.info("This is the loop as written.")
    for verdict in found.shown:
        say = st.success if verdict.key == "own" else st.error
        say(verdict.text)
        st.caption(f"Measured: {verdict.measured}.")
    last = min(result.steps, right.steps)  # the same step in both runs
    gap = float(np.abs(result.torch.weights[last] - right.torch.weights[last]).max())
    agree = "agree" if result.max_abs_diff <= 1e-10 else "do not agree"
    st.markdown(
        f"The two loops {agree} with each other in this order: the largest |hand − torch| weight "
        f"over the {result.steps:,} steps is **{result.max_abs_diff:.2g}**. After {last:,} steps "
        f"the torch loop's weights differ from the loop as written by up to **{gap:.3g}**."
    )
    if not result.done:
        st.warning(result.message())


def charts(found: lo.Lab) -> None:
    result, right = found.chosen.result, found.correct.result
    left, middle, last = st.columns(3)
    loss = {"this order, torch": result.torch.loss, "this order, hand": result.manual.loss,
            "as written": right.torch.loss}  # fmt: skip
    left.altair_chart(series_chart(loss, "Loss of each step's batch", "loss"), width="stretch")
    grad = {"this order, torch": result.torch.grad_norm, "as written": right.torch.grad_norm}
    middle.altair_chart(series_chart(grad, "Gradient norm", "norm", log=False), width="stretch")
    name = result.weight_names[0]
    weights = {"this order, torch": result.torch.weights[:, 0],
               "this order, hand": result.manual.weights[:, 0],
               "as written": right.torch.weights[:, 0]}  # fmt: skip
    last.altair_chart(series_chart(weights, f"Weight {name}", name, log=False), width="stretch")
    clip = "the norm clip_grad_norm_ measured" if result.config.clip_grad_norm else None
    st.caption(
        "Gradient norm: "
        + (clip or "the norm of the .grad left at the end of each step (0 where zero_grad() "
           "had cleared it)")
        + ". Weight: the first weight after each step (step 0 is the start)."
    )  # fmt: skip


def program(names: list[str]) -> None:
    with st.expander("The program both loops ran (rebuilt from their source in this order)"):
        st.caption("Comments are dropped: this is the syntax tree that was compiled, as text.")
        left, right = st.columns(2)
        left.code(lo.rebuilt_source(torch_side.torch_loop, names), language="python")
        right.code(lo.rebuilt_source(manual.manual_loop, names), language="python")


@st.cache_data(max_entries=16, show_spinner=False)
def step_dot(**cfg) -> tuple[str, int]:
    loss, net = graphs.step_loss(dataset(), lib.Config(**cfg))
    names = graphs.parameter_names(net, lib.Config(**cfg), dataset().n)
    return lib.autograd_graph(loss, names), len(graphs.graph_of(loss))


@st.cache_data(max_entries=16, show_spinner=False)
def growing(steps: int, **cfg) -> list[str]:
    return graphs.running_loss_graphs(dataset(), lib.Config(**cfg), steps)


def graph_section(cfg: lib.Config) -> None:
    st.header("The graph backward() walks")
    st.markdown(
        "The first step's `loss = criterion(outputs, labels)` for this model, as torch recorded "
        "it: `loss.backward()` starts at `loss.grad_fn` and follows each node's `next_functions` "
        "down to the `AccumulateGrad` leaves (shaded), which add into each parameter's `.grad`. "
        "Each box names the node and the shapes of the tensors it saved for the backward pass."
    )
    dot, nodes = step_dot(**cfg_dict(cfg))
    left, right = st.columns((3, 2))
    left.graphviz_chart(dot)
    left.caption(
        f"{nodes} nodes, read from the graph of this model's loss (batch 0, initial weights)."
    )
    right.markdown("The hand loop's backward pass computes the same derivatives, written out:")
    right.code(lo.line_source("manual", "backward"), language="python")
    with st.expander("`running_loss += loss`: the same drawing, growing step by step"):
        st.markdown(
            "A loop that keeps `running_loss += loss` as a tensor (the pitfall; `loss.item()` is "
            "the fix) links every step's graph to the next: backward() freed what each step "
            "saved, but the nodes stay."
        )
        k = st.slider("steps taken", 1, 4, 2, key="order_growth")
        dots = growing(4, **cfg_dict(cfg))
        st.graphviz_chart(dots[k - 1])
        st.caption(f"{dots[k - 1].count('[label=') - 1} nodes after {k} step{'s' * (k > 1)}.")


through_navigation()
st.title("What breaks if you move a line")
st.markdown(
    "The lines of one training step, in the order both loops run them. Move a line with ↑ ↓ (or "
    "pick a classic mistake): the torch loop runs its lines in that order and the hand loop runs "
    "their twins in the same order, both rebuilt from the very source the Code map shows, on the "
    f"same batches of 16 rows from one data set ({DATA_ARGS['m']} rows of y = w·x + b + noise, 2 "
    "features; a fifth of them held out when validation is on). Beside them, the loop as written. "
    "What broke is measured on the run."
)
cfg = config()
order_from_link()
if "order_link_note" in state:
    st.warning(state.pop("order_link_note"))
shortcuts()
names = editor(cfg)
try:
    lo.check_order(names, cfg)
except ValueError as error:
    st.error(f"Nothing ran. {str(error)[0].upper()}{str(error)[1:]}.")
else:
    found = measured(tuple(names), **cfg_dict(cfg))
    verdicts(found, names)
    charts(found)
    program(names)
graph_section(cfg)
