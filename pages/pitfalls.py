"""Pitfalls lab: each classic training-loop mistake one switch away, beside the correct run."""

import inspect
import textwrap
from types import MappingProxyType

import numpy as np
import pandas as pd
import streamlit as st

import lib
from lib import pitfalls
from lib.lessons import autograd_graph
from pages.parts.labels import LOSS_LABELS
from pages.parts.links import link_asked, note_link
from pages.parts.navigation import through_navigation
from pages.parts.widgets import Drawn

CONVENTIONS = pitfalls.SQUARED_LOSSES
# The Hessian lib.pitfalls.hessian uses, k(b) * (b/m) * A^T A, written out: for a full batch (b =
# m), and for minibatches, where it is the average over an epoch's batches of the batch loss's
# Hessian k(b) A_B^T A_B.
FORMULA_FULL = {
    "mse": r"\tfrac{2}{m} A^\top A",
    "half_mse": r"\tfrac{1}{m} A^\top A",
    "sse": r"2\,A^\top A",
}
FORMULA_BATCH = {
    "mse": r"\tfrac{2}{b}\cdot\tfrac{b}{m} A^\top A = \tfrac{2}{m} A^\top A",
    "half_mse": r"\tfrac{1}{b}\cdot\tfrac{b}{m} A^\top A = \tfrac{1}{m} A^\top A",
    "sse": r"2\cdot\tfrac{b}{m} A^\top A",
}
BATCH_HESSIAN = {
    "mse": r"\tfrac{2}{b} A_B^\top A_B",
    "half_mse": r"\tfrac{1}{b} A_B^\top A_B",
    "sse": r"2\,A_B^\top A_B",
}
TABS = (
    "1 · forgot zero_grad()",
    "2 · running_loss += loss",
    "3 · mixed 1/2 and mean/sum",
    "4 · lr above the limit",
    "5 · float32 in one loop",
    "6 · validation without no_grad()",
)
DIFF = lib.explain.DIFF_NAME + " over the run"  # named as on every page
# a metric's second line, not a change
QUIET = MappingProxyType({"delta_color": "off", "delta_arrow": "off"})


def relative(result: lib.Result) -> str:
    """The run's largest difference relative to the weights' size, as every page names it."""
    return f"{lib.explain.RELATIVE_NAME}: {lib.explain.agreement(result)['max_relative']:.2g}"


# set after the first run has compared the link with the controls
URL_CHECKED = "pitfall_url_checked"


@st.cache_data(max_entries=16, show_spinner=False)
def dataset(m: int, n: int, noise: float, seed: int) -> lib.Dataset:
    return lib.datasets.linear(m=m, n=n, noise=noise, seed=seed)


@st.cache_data(max_entries=64, show_spinner="Running both loops…")
def run(data_args: tuple, **cfg) -> lib.Result:
    return lib.run(dataset(*data_args), lib.Config(**cfg), time_limit=30)


@st.cache_data(max_entries=16, show_spinner="Measuring the graph…")
def running_loss_growth(data_args: tuple, steps: int, **cfg) -> pd.DataFrame:
    return pitfalls.running_loss_growth(dataset(*data_args), lib.Config(**cfg), steps=steps)


@st.cache_data(max_entries=16, show_spinner="Drawing the graph…")
def running_loss_graphs(data_args: tuple, steps: int, **cfg) -> list[str]:
    return autograd_graph.running_loss_graphs(dataset(*data_args), lib.Config(**cfg), steps)


@st.cache_data(max_entries=32, show_spinner="Calling running_loss.backward()…")
def second_backward(
    data_args: tuple, steps: int, retain_graph: bool, **cfg
) -> pitfalls.SecondBackward:
    return pitfalls.second_backward(
        dataset(*data_args), lib.Config(**cfg), steps=steps, retain_graph=retain_graph
    )


def vector(values: np.ndarray) -> str:
    """A vector on one line, 4 decimals."""
    return np.array2string(values, precision=4, max_line_width=10**6)


def lines(series: dict, title: str, y_title: str, **kw) -> None:
    st.altair_chart(lib.charts.series_chart(series, title, y_title, **kw), width="stretch")


HELD, FAILED = ":green[**✓**]", ":red[**✗**]"


def checked(evidence, sentence: str, failed: str) -> None:
    """A sentence with its check: ✓ and the sentence when the check held, ✗ and `failed` when not,
    then the numbers it measured; nothing where it does not apply."""
    if not evidence.applies:
        return
    st.markdown(f"{HELD} {sentence}" if evidence.ok else f"{FAILED} **Not here:** {failed}")
    shown = " · ".join(f"{k}: `{lib.explain.show(v, 6)}`" for k, v in evidence.measured.items())
    st.caption(f"Measured ({evidence.note}): {shown}")


@st.cache_data(max_entries=32, show_spinner=False)
def validation_graph(data_args: tuple, no_grad: bool, **cfg) -> pitfalls.ValidationGraph:
    return pitfalls.validation_graph(dataset(*data_args), lib.Config(**cfg), no_grad)


KEPT_PASSES = 10  # validation passes kept in a list, in tab 6


@st.cache_data(max_entries=16, show_spinner=False)
def kept_history(data_args: tuple, passes: int, **cfg) -> tuple[int, int]:
    return pitfalls.kept_history(dataset(*data_args), lib.Config(**cfg), passes)


@st.cache_data(max_entries=16, show_spinner=False)
def mode_gaps(data_args: tuple, **cfg) -> list[pitfalls.ModeGap]:
    return pitfalls.mode_gaps(dataset(*data_args), lib.Config(**cfg))


def accumulation(data_args: tuple, base: dict, k: int, b: int) -> None:
    """accumulate=k with batch b beside batch k·b: both runs, their gap and what it means."""
    acc = run(data_args, **(base | {"batch_size": b, "accumulate": k}))
    big = run(data_args, **(base | {"batch_size": k * b}))
    gap = pitfalls.accumulation_gap(acc, big, data_args[0])
    for result, name in ((acc, f"accumulate={k}, batch {b}"), (big, f"batch {k * b}")):
        if not result.done:
            st.warning(f"The run with {name}: {result.message()}")
    c1, c2, c3 = st.columns(3)
    c1.metric(
        f"largest |w difference|, accumulate={k} × batch {b} against batch {k * b}",
        f"{gap.max_weight_diff:.1e}",
        f"over {plural(gap.steps, 'step')}, both loops",
        **QUIET,
    )
    c2.metric("largest loss difference", f"{gap.max_loss_diff:.1e}", "per step", **QUIET)
    c3.metric(f"{DIFF}, accumulate={k}", f"{acc.max_abs_diff:.1e}", relative(acc), **QUIET)
    if gap.steps == 0:
        st.warning("No step to compare: a run's weights were not finite after its first step.")
        return
    lines(
        {"|w, accumulated − w, batch k·b|": gap.per_step},
        f"Largest weight difference after each step, accumulate={k} × {b} against {k * b}",
        "max |diff| (log)",
    )
    if gap.scale == 1.0:
        accumulation_equal(gap)
    elif gap.scale is not None:
        scaled = run(data_args, **(base | {"batch_size": k * b, "lr": base["lr"] * gap.scale}))
        accumulation_scaled(gap, pitfalls.accumulation_gap(acc, scaled, data_args[0]), base["lr"])
    else:
        accumulation_apart(gap)


def loop_lines(func, first: str, last: str) -> str:
    """The lines of func's source from the first that contains `first` to the next that contains
    `last`, dedented; the whole source if either is not there."""
    source = inspect.getsource(func)
    lines = source.splitlines()
    start = next((i for i, line in enumerate(lines) if first in line), None)
    stop = next((i for i in range(start or 0, len(lines)) if last in lines[i]), None)
    if start is None or stop is None:
        return source
    return textwrap.dedent("\n".join(lines[start : stop + 1]))


def plural(count: int, word: str) -> str:
    """'1 step', '2 steps' (the count with thousands separators)."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def accumulation_equal(gap: pitfalls.AccumulationGap) -> None:
    """The sentence when every compared step's rows weigh the same in both losses."""
    k, b, n = gap.k, gap.b, plural(gap.steps, "step")
    same_order = (
        " lib's loader draws the same permutation for the same seed and m, and"
        if "permutation splits" in gap.why
        else ""
    )
    rows = (
        f"{gap.why}.{same_order} On each of the {n} every row weighs the same in both losses "
        "(measured from lib's batch order)"
        if gap.same_rows
        else f"over this run's {n} every row weighs the same in both losses (measured from "
        f"lib's batch order), although in general they do not: {gap.why}, and this run ends "
        "before that"
    )
    rounding = (
        "exactly the same numbers"
        if gap.max_weight_diff == 0 and gap.max_loss_diff == 0
        else "rounding, as the k micro-batch gradients are added up in another order than one "
        "batch's rows"
    )
    diverged = (
        f" Relative to the weights' size the difference is {gap.max_relative:.1e}: the weights "
        "grew, and with them the rounding."
        if gap.max_relative <= pitfalls.EQUAL_TOL
        else ""
    )
    checked(
        pitfalls.check_accumulation_equal(gap),
        f"**accumulate={k} with batch {b} trains as batch {k * b}:** {rows}. The weights of "
        f"both loops differ by at most **{gap.max_weight_diff:.1e}** (≤ "
        f"{pitfalls.EQUAL_TOL:g}), the losses by at most {gap.max_loss_diff:.1e}: {rounding}.",
        f"every row weighs the same in both losses on each of the {n} ({gap.why}), yet the "
        f"weights differ by up to {gap.max_weight_diff:.3g}"
        + (f", first after step {gap.first_apart:,}." if gap.first_apart is not None else ".")
        + diverged,
    )


def accumulation_scaled(
    gap: pitfalls.AccumulationGap, scaled: pitfalls.AccumulationGap, lr: float
) -> None:
    """The sentences when the accumulated loss weighs every row c times the batch's (sse)."""
    k, b, c = gap.k, gap.b, gap.scale
    st.markdown(
        (
            f"The steps see the same rows ({gap.why})"
            if gap.same_rows
            else f"Over this run's {plural(gap.steps, 'step')} the steps see the same rows, "
            f"although in general they do not ({gap.why}, and this run ends before that)"
        )
        + ", but sse is a sum, and lib divides each "
        "micro-batch's loss by k whatever the convention: measured from lib's batch order, every "
        f"row weighs {c:g}× in the accumulated loss what it weighs in the loss of the batch of "
        f"{k * b}, so the accumulated gradient is {c:g}× the batch's. At the same learning rate "
        f"the weights differ by up to {gap.max_weight_diff:.3g}"
        + (f", from step {gap.first_apart:,} on." if gap.first_apart is not None else ".")
    )
    checked(
        pitfalls.check_accumulation_equal(scaled),
        f"**accumulate={k} with batch {b} at lr {lr:g} trains as batch {k * b} at lr × {c:g} = "
        f"{lr * c:g}:** over {plural(scaled.steps, 'step')} the weights of both loops differ by "
        f"at most **{scaled.max_weight_diff:.1e}** (≤ {pitfalls.EQUAL_TOL:g}).",
        f"batch {k * b} at lr × {c:g} = {lr * c:g} still differs from accumulate={k} with batch "
        f"{b} by up to {scaled.max_weight_diff:.3g} over {plural(scaled.steps, 'step')}.",
    )


def accumulation_apart(gap: pitfalls.AccumulationGap) -> None:
    """The sentence when some step's micro-batches are not the rows of its batch of k·b."""
    agreed = (
        f"the weights agree to {pitfalls.EQUAL_TOL:g} for the first "
        f"{plural(gap.first_apart - 1, 'step')} and differ from step {gap.first_apart:,} on"
        if gap.first_apart is not None and gap.first_apart > 1
        else "the weights differ from the first step on"
        if gap.first_apart == 1
        else f"the weights still stay within {pitfalls.EQUAL_TOL:g} over these steps"
    )
    st.markdown(
        f"**Here they do not cover the same rows:** {gap.why}. Measured from lib's batch order, "
        f"step {gap.shares_apart:,} is the first whose micro-batches are not the rows of its batch "
        f"of {gap.k * gap.b:,} (each weighted as in its loss); {agreed}, by up to "
        f"**{gap.max_weight_diff:.3g}** over {plural(gap.steps, 'step')} (the losses by up to "
        f"{gap.max_loss_diff:.3g}). Equal rows need k = 1, b ≥ m, or m a multiple of k·b."
    )


def graph_words(g: pitfalls.ValidationGraph) -> str:
    """What the pass without no_grad built, from its measurement."""
    first = g.node_types[0] if g.node_types else "none"
    return (
        "Without `torch.no_grad()`, the validation loss on the "
        f"{plural(g.rows, 'held-out row')} has "
        f"`requires_grad={g.requires_grad}` and a `grad_fn` (`{first}`); walking "
        f"`grad_fn.next_functions` reaches **{g.nodes} nodes** ({', '.join(g.node_types)}). "
        f"torch's `saved_tensors_hooks` saw the pass save {plural(g.saved_tensors, 'tensor')} "
        f"({g.saved_bytes:,} bytes), and the graph holds **{g.held_bytes:,} bytes** of storage, "
        f"{g.intermediate_bytes:,} of them besides the inputs, the labels and the weights: "
        "results of the forward pass that nothing but the graph refers to."
    )


def validation(data_args: tuple, cfg: dict) -> None:
    """Tab 6's measurements: the graph a validation pass builds without no_grad, and none with."""
    leaky = validation_graph(data_args, False, **cfg)
    clean = validation_graph(data_args, True, **cfg)
    c1, c2, c3 = st.columns(3)
    c1.metric("autograd nodes, without no_grad", f"{leaky.nodes}", f"with: {clean.nodes}", **QUIET)
    c2.metric(
        "bytes the graph holds, without no_grad",
        f"{leaky.held_bytes:,}",
        f"with: {clean.held_bytes:,}",
        **QUIET,
    )
    c3.metric("held-out rows", f"{leaky.rows:,}", f"of m = {data_args[0]:,}", **QUIET)
    checked(
        pitfalls.check_graph_built(leaky),
        graph_words(leaky),
        "the pass without `torch.no_grad()` built no graph here "
        f"(`requires_grad={leaky.requires_grad}`, {leaky.nodes} nodes).",
    )
    checked(
        pitfalls.check_no_graph(clean),
        "With `torch.no_grad()` the same pass builds **no graph**: `val_loss.grad_fn` is "
        "`None`, `requires_grad` is `False`, and the hooks saw no tensor saved.",
        f"with `torch.no_grad()` the pass still left {clean.nodes} nodes and "
        f"{clean.saved_tensors} saved tensors.",
    )
    checked(
        pitfalls.check_same_value(leaky, clean),
        f"The loss is the same number either way ({clean.val_loss:.17g}): `no_grad` changes "
        "what is recorded, not what is computed.",
        f"the two passes gave different losses ({leaky.val_loss:.17g} against "
        f"{clean.val_loss:.17g}).",
    )
    mlp_cfg = cfg | {"model": "mlp", "init": "normal"}
    mlp = validation_graph(data_args, False, **mlp_cfg)
    nodes, kept = kept_history(data_args, KEPT_PASSES, **cfg)
    hidden = f"{lib.Config().hidden} {lib.Config().activation} units"
    st.markdown(
        f"With a hidden layer ({hidden}), the same pass without `no_grad` keeps {mlp.nodes} "
        f"nodes and {mlp.held_bytes:,} bytes, {mlp.intermediate_bytes:,} of them the forward "
        "pass's own results. And the graph lives as long as something refers to `val_loss`: "
        f"{KEPT_PASSES} passes of this lab's model appended to a list as tensors "
        f"(`val_losses.append(val_loss)`) hold {nodes} nodes and {kept:,} bytes of forward "
        "results between them.\n\n"
        "**The fix.** Wrap the validation pass in `with torch.no_grad():` (or decorate it "
        "with `@torch.no_grad()`), and keep the number with `val_loss.item()`."
    )


def eval_mode(data_args: tuple, cfg: dict) -> None:
    """The second classic: the same rows through each model in eval mode and in train mode."""
    gaps = mode_gaps(data_args, **cfg)
    st.table(
        pd.DataFrame(
            {
                "layers": [g.layers for g in gaps],
                "max |train − eval| of the outputs": [
                    "not measured" if g.max_diff is None else f"{g.max_diff:.3g}" for g in gaps
                ],
                "buffers moved by the train-mode pass": [f"{g.buffers_moved:.3g}" for g in gaps],
            },
            index=[g.model for g in gaps],
        )
    )
    for g in gaps:
        if g.max_diff is None:
            st.caption(f"Left out here: {g.model}, since torch raised: {g.note}")
            continue
        if "Dropout" in g.layers or "BatchNorm" in g.layers:
            moved = (
                f"; and the train-mode pass itself changed its running statistics by up to "
                f"{g.buffers_moved:.3g}: validating in train mode changes the model it validates"
                if g.buffers_moved > 0
                else ""
            )
            checked(
                pitfalls.check_modes_differ(g),
                f"**{g.model}**: forgetting `model.eval()` changes its outputs, by up to "
                f"**{g.max_diff:.3g}** on these rows{moved}.",
                f"{g.model} gave the same outputs in both modes.",
            )
        else:
            checked(
                pitfalls.check_modes_equal(g),
                f"**{g.model}** ({g.layers}): the outputs in train and eval mode are equal "
                "(difference 0): for it, `model.train()` and `model.eval()` are no-ops.",
                f"{g.model}'s outputs differ between the modes by {g.max_diff:.3g}.",
            )


through_navigation()
st.title("Pitfalls lab")
st.markdown(
    "Each tab below is one classic mistake, behind one switch, on a linear model with a bias "
    "trained by plain SGD. In tabs 1 and 4 the mistake is in the loop itself, so **both** loops "
    "make it: red is the mistaken run (manual solid, torch dashed on top), grey the correct run "
    "for contrast. In tabs 3 and 5 the mistake is a mismatch between the loops, and the tab "
    "measures by how much they stop agreeing. The mistakes of tabs 2 and 6 live in torch's "
    "autograd graph (and its train/eval modes), which the hand loop does not have: they measure "
    "torch alone."
)

# Every control here is in the URL under its key (pitfall_...), so a teacher's link opens a tab with
# its switch on and the same settings; on the first run, link parameters the controls cannot take
# are named.
asked = link_asked(URL_CHECKED, lambda key: key.startswith("pitfall"))
drawn = Drawn()
link_notes = st.container()

with st.sidebar:
    st.header("Data: y = X·w + b + noise")
    m = drawn.number("samples m", "pitfall_m", 2, 5_000, 200, step=10)
    n = drawn.number("features n", "pitfall_n", 1, 20, 3)
    noise = drawn.number("noise", "pitfall_noise", 0.0, 100.0, 0.1, step=0.1)
    seed = drawn.number("seed", "pitfall_seed", 0, 2**32 - 1, 0)
    st.header("Training (the correct run)")
    loss = drawn.select("loss convention", CONVENTIONS, "pitfall_loss", format_func=LOSS_LABELS.get)
    batch_size = drawn.number("batch size", "pitfall_batch_size", 1, 5_000, 32)
    iterations = drawn.number("iterations", "pitfall_iterations", 1, 5_000, 300, step=100)
    data_args = (int(m), int(n), float(noise), int(seed))
    data = dataset(*data_args)
    base = {
        "lr": 0.01,
        "batch_size": int(batch_size),
        "iterations": int(iterations),
        "loss": loss,
        "seed": int(seed),
    }
    limit = pitfalls.stability_limit(data, lib.Config(**base))
    lr = drawn.number(
        "learning rate",
        "pitfall_lr",
        1e-6,
        1e3,
        0.01,
        format="%.6g",
        help="The stability limit below is 2 / λ_max of H = k(b)·(b/m)·AᵀA for this data, loss "
        "convention and batch size b (A is X with a column of ones): for a full batch the loss "
        "Hessian, for minibatches the average over an epoch of each batch's loss Hessian "
        "k(b)·A_Bᵀ·A_B.",
    )
    base["lr"] = float(lr)
    where = "above" if lr > limit else "at or below"
    st.markdown(
        f"**Stability limit: {limit:.4g}** · your learning rate is {lr / limit:.3g}× it ({where})."
    )
    if lr > limit:
        st.warning(
            "This learning rate is above the stability limit: each full-batch step multiplies "
            "the error along H's top eigenvector by more than 1, so expect the correct runs of "
            "tabs 1, 3 and 5 to diverge."
            if batch_size >= m
            else "This learning rate is above the stability limit, which for minibatches is a "
            "guide, not a sharp edge: expect the correct runs of tabs 1, 3 and 5 to blow up."
        )

tabs = st.tabs(TABS, key="pitfall", bind="query-params")
drawn["pitfall"] = (st.session_state.get("pitfall", TABS[0]), "the name of one of the six tabs")

# 1. Forgot zero_grad() in the torch loop, and its twin, forgot to reset neg_grad in the hand loop.
with tabs[0]:
    st.markdown(
        "**The mistake.** Leave out `optimizer.zero_grad()` in the torch loop, and its twin "
        "`neg_grad = np.zeros_like(weights)` in the hand loop. `backward()` *adds* the new "
        "gradient into `.grad` (as the hand loop's `+=` adds into `neg_grad`), so without the "
        "reset each step uses the sum of every gradient so far."
    )
    if drawn.check("Forget zero_grad() in both loops", "pitfall_zero_grad", False, toggle=True):
        wrong, correct = run(data_args, **base, zero_grad=False), run(data_args, **base)
        c1, c2, c3 = st.columns(3)
        c1.metric(
            DIFF,
            f"{wrong.max_abs_diff:.1e}",
            relative(wrong),
            **QUIET,
            help="Same mistake in both loops.",
        )
        c2.metric(
            "gradient norm, last step",
            f"{wrong.manual.grad_norm[-1]:.3g}",
            f"correct run: {correct.manual.grad_norm[-1]:.3g}",
            delta_color="off",
            delta_arrow="off",
        )
        c3.metric(
            "loss, last step",
            f"{wrong.manual.loss[-1]:.3g}",
            f"correct run: {correct.manual.loss[-1]:.3g}",
            delta_color="off",
            delta_arrow="off",
        )
        for result, name in ((wrong, "The mistaken run"), (correct, "The correct run")):
            if not result.done:
                st.warning(f"{name}: {result.message()}")
        g = {"mistake, manual": wrong.manual.grad_norm, "mistake, torch": wrong.torch.grad_norm}
        lines(
            g | {"correct": correct.manual.grad_norm},
            "What .grad holds at each step",
            "gradient norm (log)",
        )
        los = {"mistake, manual": wrong.manual.loss, "mistake, torch": wrong.torch.loss}
        lines(los | {"correct": correct.manual.loss}, "Loss of each step's batch", "loss (log)")
        late = slice(wrong.steps // 2, None)  # the second half of the steps both runs took
        late_c = slice(correct.steps // 2, None)
        noise_words = (
            ""
            if min(int(batch_size), int(m)) >= int(m)
            else " With minibatches the sum also adds up every batch's departure from the mean "
            "gradient."
        )
        if loss == "sse":
            divide = (
                'with `MSELoss(reduction="sum")` the k gradients already add up to the gradient of '
                "the sum over all k micro-batches, so there is nothing to divide."
            )
        else:
            divide = (
                "and, as this loss is a mean, divide each micro-batch's loss by k, so that for k "
                "equal micro-batches the summed gradient is the gradient of the mean over all of "
                "them."
            )
        st.markdown(
            "**What it does.** The summed gradient keeps pushing after the minimum is passed: "
            "with plain SGD, forgetting the reset is exactly SGD with momentum 1 and no "
            f"dampening, whose buffer is the sum of every gradient so far.{noise_words} Here, "
            "over the second half of the steps, the median gradient norm is "
            f"**{np.median(wrong.manual.grad_norm[late]):.3g}** without the reset against "
            f"**{np.median(correct.manual.grad_norm[late_c]):.3g}** with it.\n"
            "\n"
            "**The fix.** Call `optimizer.zero_grad()` once per step, before `backward()`. By "
            "default it sets `.grad` to `None` rather than to zeros; the next `backward()` then "
            "starts afresh. Accumulating on purpose (gradient accumulation over k micro-batches) "
            "uses this same mechanism: call `step()` and then `zero_grad()` once every k "
            f"micro-batches instead of after each one, {divide}"
        )
    else:
        st.caption("Switch on to run both loops with the mistake, beside the correct run.")
    st.markdown(
        "**Skipping the reset on purpose: gradient accumulation.** With `accumulate=k` both "
        "loops reset the gradient once, then run forward, the loss divided by k and `backward()` "
        "on k micro-batches of b rows, and take one `step()`: `.grad` adds up the k gradients. "
        "Where the k micro-batches are the rows of one batch of k·b, that sum is the gradient of "
        "the batch of k·b, and the runs should be the same run. The torch loop's lines that do "
        "it (read from `lib/twins/torch_side.py`, the code `lib.run` runs):"
    )
    st.code(
        loop_lines(lib.torch_loop, "# Reset the gradient", "optimizer.step()"), language="python"
    )
    if drawn.check(
        "Accumulate k micro-batches per step, beside one batch of k·b",
        "pitfall_accumulate",
        False,
        toggle=True,
    ):
        c1, c2 = st.columns(2)
        with c1:
            k = drawn.number("micro-batches per step, k", "pitfall_accumulate_k", 1, 16, 4)
        with c2:
            micro = drawn.number("micro-batch size, b", "pitfall_micro_batch", 1, 5_000, 10)
        accumulation(data_args, base, int(k), int(micro))
    else:
        st.caption("Switch on to run accumulate=k with batch b beside batch k·b.")

# 2. running_loss += loss keeps the tensor, and with it every step's autograd graph.
with tabs[1]:
    st.markdown(
        "**The mistake.** Adding up the loss for a progress report with `running_loss += loss` "
        "instead of `running_loss += loss.item()`. The number is the same; but `loss` is a "
        "tensor with a `grad_fn`, so `running_loss` becomes a tensor whose graph links every "
        "step's graph together. This is the real loop measured here (the code that runs, from "
        "`lib/lessons/pitfalls.py`):"
    )
    st.code(inspect.getsource(pitfalls.running_loss_loop), language="python")
    if loss != "mse":
        st.caption(
            f"This loop uses `nn.MSELoss()`, as shown, whatever the sidebar's convention ({loss})."
        )
    if drawn.check(
        "Keep running_loss as a tensor (running_loss += loss)",
        "pitfall_running_loss",
        False,
        toggle=True,
    ):
        steps = drawn.slider("steps to measure", "pitfall_steps", 10, 500, 100, 10)
        growth = running_loss_growth(data_args, steps, **base)
        by_variant = {
            name: part.sort_values("step") for name, part in growth.groupby("variant", sort=False)
        }
        x = next(iter(by_variant.values()))["step"].to_numpy()
        nodes = {name: part["nodes"].to_numpy() for name, part in by_variant.items()}
        held = {name: part["saved_bytes"].to_numpy() / 1024 for name, part in by_variant.items()}
        lines(
            nodes,
            "Autograd nodes reachable from running_loss",
            "nodes",
            log=False,
            x=x,
            x_title="steps",
        )
        lines(held, "Saved tensors those nodes keep alive", "KiB", log=False, x=x, x_title="steps")
        last = growth[growth["step"] == growth["step"].max()].set_index("variant")
        table = last.drop(columns="step").rename_axis(f"running_loss, after {steps} steps")
        st.table(table.style.format({"running_loss": "{:.6g}", "saved_bytes": "{:,}"}))
        with st.expander("The graph `running_loss` holds, after each of the first three steps"):
            st.caption(
                "Walked from `running_loss.grad_fn` through `next_functions`, as `backward()` "
                "would walk it: each step adds its whole graph (forward pass and loss) under one "
                "more `AddBackward0`, down to the same `AccumulateGrad` leaves."
            )
            for k, dot in enumerate(running_loss_graphs(data_args, 3, **base), start=1):
                st.markdown(f"After step {k}:")
                st.graphviz_chart(dot)
        counts = ["nodes", "saved_tensors", "freed_tensors", "saved_bytes"]
        mistake = last.loc["+= loss", counts].astype(int)
        fixed = last.loc["+= loss.item()"]
        tail = by_variant["+= loss"].tail(2)
        (s0, s1), (n0, n1) = tail["step"].to_numpy(), tail["nodes"].to_numpy()
        if mistake["saved_tensors"] == 0:
            kept = (
                "Each step's `backward()` already freed the tensors those nodes had saved "
                f"({mistake['freed_tensors']:,} freed so far), so what leaks is the nodes "
                "themselves, a little memory per step."
            )
        else:
            kept = (
                f"They still hold {mistake['saved_tensors']:,} saved tensors "
                f"({mistake['saved_bytes']:,} bytes); {mistake['freed_tensors']:,} others were "
                "freed by each step's `backward()`."
            )
        float_words = (
            "is a float and holds nothing"
            if fixed["nodes"] == 0
            else f"holds {int(fixed['nodes'])} nodes"
        )
        st.markdown(
            f"After {steps} steps, `running_loss += loss` holds **{mistake['nodes']:,} autograd "
            f"nodes**, {(n1 - n0) / (s1 - s0):g} more per step (measured from step {s0} to "
            f"{s1}). {kept} With `.item()` the total {float_words}."
        )
        st.markdown(
            "**Then the mistake bites:** at the end of the epoch, someone calls "
            "`running_loss.backward()`:"
        )
        failed = second_backward(data_args, steps, False, **base)
        if failed.message is None:
            st.success(f"running_loss.backward() ran without an error here, after {steps} steps.")
        else:
            st.error(f"RuntimeError: {failed.message}")
            made = sorted(set(failed.steps_run), reverse=True)
            made_words = (
                f"step {made[0]}" if len(made) == 1 else "steps " + ", ".join(map(str, made))
            )
            newest = (
                " autograd starts from the newest nodes, and"
                if failed.failed_step == steps
                and list(failed.steps_run) == sorted(failed.steps_run, reverse=True)
                else ""
            )
            st.markdown(
                "This is torch's own error, raised just now and caught. A pre-hook on every node "
                f"of the graph recorded what the call ran: {failed.nodes_run:,} "
                f"node{'s' if failed.nodes_run != 1 else ''}, made by {made_words}, and it "
                f"failed at **step {failed.failed_step}'s `{failed.failed_node}`**"
                + (" (the last step's):" if failed.failed_step == steps else ":")
                + f"{newest} this node's saved tensors were freed by that step's own `backward()`."
            )
        st.markdown(
            "**The fix.** Keep running totals as numbers: `running_loss += loss.item()` (or "
            "`loss.detach()` if you want to stay on the device and call `.item()` once at the "
            "end). If you really want the gradient of a sum of losses, add the losses first and "
            "call `backward()` once."
        )
        retained = last.loc["+= loss, retain_graph=True"]
        growing = bool(
            np.all(np.diff(by_variant["+= loss, retain_graph=True"]["saved_bytes"].to_numpy()) > 0)
        )
        linear = second_backward(data_args, steps, True, **base)
        mlp = second_backward(data_args, steps, True, **base, model="mlp", init="normal")
        suggested = failed.message is not None and "retain_graph=True" in failed.message
        st.markdown(
            f"**Why not `retain_graph=True`{', as the message suggests' if suggested else ''}?** "
            + (
                "On this lab's model, `nn.Linear`, it silences the error: with "
                "`retain_graph=True` in each step's `backward()`, `running_loss.backward()` ran "
                f"all {linear.nodes_run:,} nodes after {steps} steps. "
                if linear.message is None
                else "On this lab's model, `nn.Linear`, it did not silence the error: "
                f"`{linear.message}` (at step {linear.failed_step}'s `{linear.failed_node}`). "
            )
            + "But every step's saved tensors then stay alive: "
            f"{retained['saved_bytes'] / 1024:,.1f} KiB after {steps} steps here"
            + (
                ", more at every step measured (the rising line in the second chart)."
                if growing
                else "."
            )
        )
        if linear.message is None:
            produced, summed = pitfalls.stale_gradient(data, lib.Config(**base), steps=5)
            gap = float(np.max(np.abs(produced - summed)))
            if np.isfinite(gap) and gap <= 1e-9 * max(1.0, float(np.max(np.abs(summed)))):
                st.markdown(
                    "And the gradient `running_loss.backward()` then adds into `.grad` is the "
                    "sum of the old gradients, each taken at weights that no longer exist and "
                    f"each already used by its own step: over 5 steps, {vector(produced)} equals "
                    f"the sum of the 5 step gradients (largest difference {gap:.1e})."
                )
            else:
                st.markdown(
                    "The gradient `running_loss.backward()` adds into `.grad` after 5 steps, "
                    f"{vector(produced)}, was compared with the sum of the 5 step gradients, "
                    f"{vector(summed)}: largest difference {gap:.3g}"
                    + (
                        " (this learning rate overflows the numbers)."
                        if not np.isfinite(gap)
                        else "."
                    )
                )
        hidden = f"{lib.Config().hidden} {lib.Config().activation} units, seeded normal init"
        if mlp.message is None:
            st.markdown(
                f"With a hidden layer ({hidden}), measured the same way, `retain_graph=True` "
                "silences the error too."
            )
        else:
            st.markdown(
                f"With a hidden layer ({hidden}), measured the same way, `retain_graph=True` "
                f"does **not** silence it: the call fails at step {mlp.failed_step}'s "
                f"`{mlp.failed_node}` with `RuntimeError: {mlp.message}` Each `step()` updates "
                "the weights in place, and the graph through the hidden layer saved a weight "
                "that `step()` then changed"
                + (
                    "; `nn.Linear` on the inputs alone saved no tensor that `step()` changes."
                    if linear.message is None
                    else "."
                )
                if "inplace" in mlp.message
                else f"With a hidden layer ({hidden}), measured the same way, the call fails at "
                f"step {mlp.failed_step}'s `{mlp.failed_node}` with `RuntimeError: {mlp.message}`"
            )
    else:
        st.caption(
            "Switch on to measure what the tensor keeps alive and to trigger the real error."
        )

# 3. The 1/2 and mean/sum conventions mixed between the two loops.
with tabs[2]:
    st.markdown(
        "**The mistake.** The hand loop and the torch loop use different loss conventions, e.g. "
        "the textbook's `1/2 · mean` by hand against `nn.MSELoss()` (a mean with no 1/2). The "
        "gradients then differ by a factor set by the two conventions and the batch size, so the "
        "same learning rate takes different steps: the loops stop agreeing."
    )
    col1, col2 = st.columns(2)
    with col1:
        hand = drawn.select(
            "hand loop convention",
            CONVENTIONS,
            "pitfall_hand_loss",
            "half_mse",
            format_func=LOSS_LABELS.get,
        )
    with col2:
        theirs = drawn.select(
            "torch loop convention",
            CONVENTIONS,
            "pitfall_torch_loss",
            "mse",
            format_func=LOSS_LABELS.get,
        )
    if drawn.check("Mix the conventions between the loops", "pitfall_mixed", False, toggle=True):
        mixed = run(data_args, **(base | {"loss": theirs}), manual_loss=hand)
        agreed = run(data_args, **(base | {"loss": theirs}))
        b = min(int(batch_size), int(m))
        predicted = lib.effective_lr_ratio(hand, theirs, b)
        c1, c2, c3 = st.columns(3)
        c1.metric(
            "predicted step factor, hand / torch", f"{predicted:.6g}", help="lib.effective_lr_ratio"
        )
        c2.metric(
            "measured from the first update",
            f"{pitfalls.measured_step_ratio(mixed):.6g}",
            help="|Δw hand| / |Δw torch|",
        )
        c3.metric(DIFF, f"{mixed.max_abs_diff:.3g}", relative(mixed), **QUIET)
        if hand == theirs:
            st.info(
                "Both loops use the same convention: there is no mismatch, and the factor is 1."
            )
        for result, name in ((mixed, "The mixed run"), (agreed, "The correct run")):
            if not result.done:
                st.warning(f"{name}: {result.message()}")
        target = lib.least_squares(data, True)
        dist = {
            "mistake, manual": np.linalg.norm(mixed.manual.weights - target, axis=1),
            "mistake, torch": np.linalg.norm(mixed.torch.weights - target, axis=1),
            "correct": np.linalg.norm(agreed.manual.weights - target, axis=1),
        }
        lines(dist, "Distance of the weights from the least-squares solution", "|w - w*| (log)")
        st.caption(
            "The torch loop runs the same in both runs, so the grey line lies under the dashed one."
        )
        st.markdown(
            "Losses under different conventions are not comparable numbers, so this chart shows "
            "the distance to the least-squares weights, where every convention's loss over the "
            "whole data is smallest. The factor comes from the gradients on a batch of b rows (A "
            "and y hold its rows): mse is 2/b · Aᵀ(Aw − y), half_mse 1/b · Aᵀ(Aw − y), sse "
            f"2 · Aᵀ(Aw − y), with b the batch size (here {b}). So mse steps twice as far as "
            "half_mse at the same learning rate, and sse b times as far as mse. **The fix:** use "
            "the same convention in both, or scale the learning rate by the factor."
        )
    else:
        st.caption("Switch on to run the hand loop with one convention and torch with the other.")

# 4. A learning rate above the stability limit.
with tabs[3]:
    full = drawn.check("full batch (the limit is exact only then)", "pitfall_full_batch", True)
    cfg4 = base | {"batch_size": int(m) if full else int(batch_size)}
    b4 = min(cfg4["batch_size"], int(m))
    whole = b4 >= int(m)
    limit4 = pitfalls.stability_limit(data, lib.Config(**cfg4))
    scale4 = pitfalls.hessian_scale(data, lib.Config(**cfg4))
    if whole:
        hessian_words = (
            f"For a linear model the loss is a quadratic with Hessian H = ${FORMULA_FULL[loss]}$ "
            f"(here ${scale4:.4g}\\,A^\\top A$, with m = {int(m)}; A is X with a column of ones "
            "for the bias). "
        )
    else:
        hessian_words = (
            "For a linear model one batch B of b rows has a quadratic loss with Hessian "
            f"${BATCH_HESSIAN[loss]}$; averaged over an epoch's batches that is "
            f"H = ${FORMULA_BATCH[loss]}$ (here b = {b4}, m = {int(m)}: ${scale4:.4g}\\,A^\\top "
            "A$; A is X with a column of ones for the bias). "
        )
    st.markdown(
        f"**The limit.** {hessian_words}One full-batch step multiplies the error along H's top "
        "eigenvector by 1 − lr·λ_max, so full-batch gradient descent converges for lr < 2/λ_max "
        f"and diverges above. Here: **2/λ_max = {limit4:.4g}**."
    )
    if not whole:
        st.caption(
            "With minibatches each step sees its own batch's Hessian, whose λ_max scatters "
            "around the average: the limit is then a guide, not a sharp edge, and rates somewhat "
            "below it can already blow up."
        )
    ratios = np.linspace(0.0, 2.2, 221)
    factors = pitfalls.growth_factor(data, lib.Config(**cfg4), ratios * limit4)
    growth_title = (
        "max |1 − lr·λ| over the eigenvalues of H: above 1, a full-batch step grows an error"
    )
    if drawn.check("Cross the stability limit", "pitfall_limit", False, toggle=True):
        factor = drawn.slider(
            "learning rate of the mistake, × the limit", "pitfall_factor", 1.01, 2.0, 1.10, 0.01
        )
        # The correct run divides the limit by the factor the mistake multiplies it by: in (0.5, 1)
        # of the limit for every slider value, never 0.
        lr_above, lr_below = factor * limit4, limit4 / factor
        above = run(data_args, **(cfg4 | {"lr": lr_above}))
        below = run(data_args, **(cfg4 | {"lr": lr_below}))
        marks = {
            "limit": 1.0,
            f"mistake ({factor:g}×)": factor,
            f"correct ({1 / factor:.3g}×)": 1 / factor,
        }
        lines(
            {"worst error factor per step": factors},
            growth_title,
            "growth per step",
            log=False,
            x=ratios,
            x_title="learning rate ÷ stability limit",
            rules=marks,
        )
        c1, c2 = st.columns(2)
        c1.metric(f"mistake: learning rate, {factor:g}× the limit", f"{lr_above:.4g}")
        c2.metric(
            f"correct: learning rate, the limit ÷ {factor:g} ({1 / factor:.3g}×)", f"{lr_below:.4g}"
        )
        for result in (above, below):
            if not result.done:
                st.warning(f"Run at lr = {result.config.lr:.4g}: {result.message()}")
        runs = {
            "mistake, manual": above.manual.loss,
            "mistake, torch": above.torch.loss,
            "correct": below.manual.loss,
        }
        lines(
            runs,
            f"Loss of each step's batch, at {factor:g}× and at 1/{factor:g} of the limit",
            "loss (log)",
        )
        top_above = pitfalls.top_error_factor(data, lib.Config(**cfg4), lr_above)
        top_below = pitfalls.top_error_factor(data, lib.Config(**cfg4), lr_below)
        if whole:
            along = (
                "Along H's top eigenvector each step multiplies the error by |1 − lr·λ_max|: "
                f"{top_above:.3g} at {factor:g}× the limit (that part of the loss by its square, "
                f"{top_above**2:.3g}), {top_below:.3g} at the limit ÷ {factor:g}."
            )
        else:
            along = (
                f"For the average Hessian H, |1 − lr·λ_max| is {top_above:.3g} at {factor:g}× "
                f"the limit and {top_below:.3g} at the limit ÷ {factor:g}; each minibatch step "
                "multiplies the error by its own batch's I − lr·H_B instead, so these describe "
                "H, not any one step."
            )
        st.markdown(
            f"Mistaken run: the loss went from {above.manual.loss[0]:.3g} to "
            f"{above.manual.loss[-1]:.3g} in {above.steps:,} steps; correct run: from "
            f"{below.manual.loss[0]:.3g} to {below.manual.loss[-1]:.3g} in {below.steps:,}. "
            f"{along}"
        )
    else:
        lines(
            {"worst error factor per step": factors},
            growth_title,
            "growth per step",
            log=False,
            x=ratios,
            x_title="learning rate ÷ stability limit",
            rules={"limit": 1.0, "your lr": min(lr / limit4, 2.2)},
        )
        st.caption("Switch on to run above the limit and below it.")
    limits = {
        c: pitfalls.stability_limit(data, lib.Config(**(cfg4 | {"loss": c}))) for c in CONVENTIONS
    }
    scaled = pitfalls.stability_limit(pitfalls.standardised(data), lib.Config(**cfg4))
    if np.isclose(scaled, limit4, rtol=1e-9):
        moved = f"leaves it at {limit4:.4g}"
    else:
        moved = f"{'raises' if scaled > limit4 else 'lowers'} it from {limit4:.4g} to {scaled:.4g}"
    st.markdown(
        "**The fix.** Keep the learning rate below 2/λ_max. The limit depends on the loss "
        "convention (here "
        + ", ".join(f"{c} {v:.4g}" for c, v in limits.items())
        + f", with b = {b4}) and on the scale of the inputs: standardising these features (each "
        f"to mean 0 and standard deviation 1) {moved}. Depending on the data it can move either "
        "way: up for large or uncentred features, and down for some small, correlated ones."
    )

# 5. float32 in the torch loop against float64 in the hand loop.
with tabs[4]:
    dtypes = {
        code: str(dtype).removeprefix("torch.") for code, dtype in pitfalls.default_dtypes().items()
    }
    eps32, eps64 = np.finfo(np.float32).eps, np.finfo(np.float64).eps
    st.markdown(
        "**The mistake.** One loop in single precision: here torch in `float32`, the hand loop "
        "in numpy's `float64`. torch's default dtype is "
        f"`{dtypes['torch.get_default_dtype()']}`: it is what `torch.tensor(0.5)` gives a Python "
        f"float (`{dtypes['torch.tensor(0.5)']}`) and what `nn.Linear` makes its weights in "
        f"(`{dtypes['nn.Linear(1, 1).weight']}`), while `torch.tensor` of a float64 numpy array "
        f"keeps its dtype (`{dtypes['torch.tensor(np.array([0.5]))']}`). float32 keeps about "
        f"{-np.log10(eps32):.0f} significant digits (machine epsilon {eps32:.2g}), float64 about "
        f"{-np.log10(eps64):.0f} ({eps64:.2g})."
    )
    if drawn.check("Run the torch loop in float32", "pitfall_float32", False, toggle=True):
        single, correct = run(data_args, **base, torch_dtype="float32"), run(data_args, **base)
        c1, c2 = st.columns(2)
        c1.metric(
            f"{DIFF}, torch in float32", f"{single.max_abs_diff:.2e}", relative(single), **QUIET
        )
        c2.metric(
            f"{DIFF}, both float64", f"{correct.max_abs_diff:.2e}", relative(correct), **QUIET
        )
        for result, name in ((single, "float32"), (correct, "float64")):
            if not result.done:
                st.warning(f"The run with torch in {name}: {result.message()}")
        drift = {
            "mistake: torch float32, manual float64": single.step_diff,
            "correct: both float64": correct.step_diff,
        }
        lines(
            drift, "Largest |manual − torch| over the weights, after each step", "max |diff| (log)"
        )
        zeros = int(np.sum(correct.step_diff == 0))
        apart = np.flatnonzero(single.step_diff > 0)
        weights = np.abs(single.manual.weights[np.isfinite(single.manual.weights).all(axis=1)])
        resolution = eps32 * float(weights.max()) if weights.size else float("nan")
        first = (
            f"The drift first shows after step {apart[0]:,}"
            + (" (the weights at step 0 are the same init in both)" if apart[0] > 0 else "")
            + ", from rounding in every product and sum. "
            if apart.size
            else "Here the float32 run never differed from the float64 one. "
        )
        st.markdown(
            first + f"Its largest value, {single.max_abs_diff:.2g}, is "
            f"{single.max_abs_diff / resolution:.3g}× float32's resolution of the largest weight "
            f"(epsilon × {float(weights.max()) if weights.size else 0:.3g} = {resolution:.2g}). "
            "It is not a bug, but it is why the twin loops are compared in float64: "
            + (
                f"there, the two loops differ by at most {correct.max_abs_diff:.1e} on this run, "
                "which shows that they computed the same numbers to that precision here; with "
                f"torch in float32 a real difference smaller than {single.max_abs_diff:.1e} "
                "could hide in the drift. "
                if correct.done
                else f"there, they differ by at most {correct.max_abs_diff:.1e} here, but this "
                "run diverged, and its differences grew with its weights: compare at a learning "
                "rate that converges. "
            )
            + f"Steps where the float64 loops agree exactly (a difference of 0: {zeros:,} here) "
            "cannot be drawn on a log scale and are left out."
        )
    else:
        st.caption("Switch on to run the torch loop in single precision.")

# 6. Validation without torch.no_grad(), and without model.eval().
with tabs[5]:
    st.markdown(
        "**The mistake.** Running the validation pass without `torch.no_grad()`. The weights "
        "require grad, so every operation on them is recorded for a `backward()` that never "
        "comes: the loss gets a `grad_fn`, and the graph keeps the tensors saved for it alive. "
        "This is the validation pass measured here (the code that runs, from "
        "`lib/lessons/pitfalls.py`), on this lab's model at its initial weights and the data in "
        "the sidebar:"
    )
    st.code(inspect.getsource(pitfalls.validation_pass), language="python")
    share = drawn.slider(
        "held-out share of the rows (val_fraction)", "pitfall_val_fraction", 0.05, 0.5, 0.2, 0.05
    )
    cfg6 = base | {"val_fraction": float(share)}
    if drawn.check("Validate without torch.no_grad()", "pitfall_no_grad", False, toggle=True):
        validation(data_args, cfg6)
        st.markdown(
            "**The second classic: forgetting `model.eval()`.** It matters only for layers that "
            "behave differently in training, such as dropout and batch norm. The held-out rows "
            "through each model in eval mode, then in train mode (torch's generator seeded, so "
            f"dropout draws the same mask every time; the dropout rate is {pitfalls.DROPOUT_P:g}):"
        )
        eval_mode(data_args, cfg6)
    else:
        st.caption("Switch on to measure the graph a validation pass builds, and the two modes.")

if asked is not None:
    with link_notes:
        for note in note_link(URL_CHECKED, asked, drawn):
            st.warning(note)
