"""Pitfalls lab: each classic training-loop mistake one switch away, beside the correct run."""

import inspect

import numpy as np
import pandas as pd
import streamlit as st

import lib
from lib import pitfalls
from pages.common import Drawn, through_navigation, url_notes

CONVENTIONS = pitfalls.SQUARED_LOSSES
LABELS = {
    "mse": "mse: MSELoss(), mean, no 1/2",
    "half_mse": "half_mse: 1/2 × mean (classic hand loop)",
    "sse": 'sse: MSELoss(reduction="sum")',
}
FORMULA = {"mse": r"\tfrac{2}{m} A^\top A", "half_mse": r"\tfrac{1}{m} A^\top A", "sse": r"2\,A^\top A"}
TABS = (
    "1 · forgot zero_grad()",
    "2 · running_loss += loss",
    "3 · mixed 1/2 and mean/sum",
    "4 · lr above the limit",
    "5 · float32 in one loop",
)
URL_CHECKED = "pitfall_url_checked"  # set after the first run has compared the link with the controls


@st.cache_data(max_entries=16, show_spinner=False)
def dataset(m: int, n: int, noise: float, seed: int) -> lib.Dataset:
    return lib.datasets.linear(m=m, n=n, noise=noise, seed=seed)


@st.cache_data(max_entries=64, show_spinner="Running both loops…")
def run(data_args: tuple, **cfg) -> lib.Result:
    return lib.run(dataset(*data_args), lib.Config(**cfg), time_limit=30)


@st.cache_data(max_entries=16, show_spinner="Measuring the graph…")
def running_loss_growth(data_args: tuple, steps: int, **cfg) -> pd.DataFrame:
    return pitfalls.running_loss_growth(dataset(*data_args), lib.Config(**cfg), steps=steps)


def lines(series: dict, title: str, y_title: str, **kw) -> None:
    st.altair_chart(pitfalls.series_chart(series, title, y_title, **kw), width="stretch")


through_navigation()
st.title("Pitfalls lab")
st.markdown(
    "Each tab below is one classic mistake, behind one switch. Where the mistake is in the loop itself, "
    "**both** loops make it, so they still agree with each other: red is the mistaken run (manual solid, "
    "torch dashed on top), grey the correct run for contrast. Where the mistake is a mismatch between the "
    "loops, the loops stop agreeing, and the tab measures by how much."
)

# Every control here is in the URL under its key (pitfall_...), so a teacher's link opens a tab with its
# switch on and the same settings; on the first run, link parameters the controls cannot take are named.
first_run = URL_CHECKED not in st.session_state
asked = {k: st.query_params.get_all(k) for k in st.query_params if k.startswith("pitfall")} if first_run else {}
drawn = Drawn()
link_notes = st.container()

with st.sidebar:
    st.header("Data: y = X·w + b + noise")
    m = drawn.number("samples m", "pitfall_m", 2, 5_000, 200, step=10)
    n = drawn.number("features n", "pitfall_n", 1, 20, 3)
    noise = drawn.number("noise", "pitfall_noise", 0.0, 100.0, 0.1, step=0.1)
    seed = drawn.number("seed", "pitfall_seed", 0, 2**32 - 1, 0)
    st.header("Training (the correct run)")
    loss = drawn.select("loss convention", CONVENTIONS, "pitfall_loss", format_func=LABELS.get)
    batch_size = drawn.number("batch size", "pitfall_batch_size", 1, 5_000, 32)
    iterations = drawn.number("iterations", "pitfall_iterations", 1, 5_000, 300, step=100)
    data_args = (int(m), int(n), float(noise), int(seed))
    data = dataset(*data_args)
    base = {"lr": 0.01, "batch_size": int(batch_size), "iterations": int(iterations), "loss": loss, "seed": int(seed)}
    limit = pitfalls.stability_limit(data, lib.Config(**base))
    lr = drawn.number(
        "learning rate", "pitfall_lr", 1e-6, 1e3, 0.01, format="%.6g",
        help="The stability limit below is 2 / λ_max of the loss Hessian for this data and loss convention.",
    )  # fmt: skip
    base["lr"] = float(lr)
    where = "above" if lr > limit else "below"
    st.markdown(f"**Stability limit: {limit:.4g}** · your learning rate is {lr / limit:.3g}× it ({where}).")
    if lr > limit:
        st.warning("This learning rate is above the stability limit: the correct run itself will diverge.")

tabs = st.tabs(TABS, key="pitfall", bind="query-params")
drawn["pitfall"] = (st.session_state.get("pitfall", TABS[0]), "the name of one of the five tabs")

# 1. Forgot zero_grad() in the torch loop, and its twin, forgot to reset d_weights in the hand loop.
with tabs[0]:
    st.markdown(
        "**The mistake.** Leave out `optimizer.zero_grad()` in the torch loop, and `d_weights = 0` in the "
        "hand loop. `backward()` *adds* the new gradient into `.grad` (as the hand loop adds into "
        "`d_weights`), so without the reset each step uses the sum of every gradient so far."
    )
    if drawn.check("Forget zero_grad() in both loops", "pitfall_zero_grad", False, toggle=True):
        wrong, correct = run(data_args, **base, zero_grad=False), run(data_args, **base)
        c1, c2, c3 = st.columns(3)
        c1.metric("manual vs torch, max |diff|", f"{wrong.max_abs_diff:.1e}", help="Same mistake in both loops.")
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
        if not wrong.done:
            st.warning(wrong.message())
        g = {"mistake, manual": wrong.manual.grad_norm, "mistake, torch": wrong.torch.grad_norm}
        lines(g | {"correct": correct.manual.grad_norm}, "What .grad holds at each step", "gradient norm (log)")
        los = {"mistake, manual": wrong.manual.loss, "mistake, torch": wrong.torch.loss}
        lines(los | {"correct": correct.manual.loss}, "Loss of each step's batch", "loss (log)")
        st.markdown(
            "**What it does.** The summed gradient keeps pushing long after the minimum is passed: this is "
            "gradient descent with a momentum of exactly 1 and no friction. The weights swing around the "
            "minimum instead of settling, and with minibatches the noise in each batch's gradient adds up "
            "too, so the gradient norm stays large or grows while the correct run's shrinks.\n\n"
            "**The fix.** Call `optimizer.zero_grad()` once per step, before `backward()`. By default it sets "
            "`.grad` to `None` rather than to zeros; the next `backward()` then starts afresh. Accumulating "
            "on purpose (gradient accumulation over k micro-batches) is this same mechanism: call `zero_grad()` "
            "every k steps and divide the loss by k."
        )
    else:
        st.caption("Switch on to run both loops with the mistake, beside the correct run.")

# 2. running_loss += loss keeps the tensor, and with it every step's autograd graph.
with tabs[1]:
    st.markdown(
        "**The mistake.** Adding up the loss for a progress report with `running_loss += loss` instead of "
        "`running_loss += loss.item()`. The number is the same; but `loss` is a tensor with a `grad_fn`, "
        "so `running_loss` becomes a tensor whose graph links every step's graph together. This is the "
        "real loop measured here (the code that runs, from `lib/pitfalls.py`):"
    )
    st.code(inspect.getsource(pitfalls.running_loss_loop), language="python")
    if drawn.check("Keep running_loss as a tensor (running_loss += loss)", "pitfall_running_loss", False, toggle=True):
        steps = drawn.slider("steps to measure", "pitfall_steps", 10, 500, 100, 10)
        growth = running_loss_growth(data_args, steps, **base)
        by_variant = {name: part.sort_values("step") for name, part in growth.groupby("variant", sort=False)}
        x = next(iter(by_variant.values()))["step"].to_numpy()
        nodes = {name: part["nodes"].to_numpy() for name, part in by_variant.items()}
        held = {name: part["saved_bytes"].to_numpy() / 1024 for name, part in by_variant.items()}
        lines(nodes, "Autograd nodes reachable from running_loss", "nodes", log=False, x=x, x_title="steps")
        lines(held, "Saved tensors those nodes keep alive", "KiB", log=False, x=x, x_title="steps")
        last = growth[growth["step"] == growth["step"].max()].set_index("variant")
        table = last.drop(columns="step").rename_axis(f"running_loss, after {steps} steps")
        st.table(table.style.format({"running_loss": "{:.6g}", "saved_bytes": "{:,}"}))
        mistake = last.loc["+= loss"].astype(int)
        st.markdown(
            f"After {steps} steps, `running_loss += loss` holds **{mistake['nodes']:,} autograd nodes** "
            f"({(mistake['nodes'] - 1) / steps:.0f} per step, without end). Each step's `backward()` already "
            f"freed the tensors those nodes had saved ({mistake['freed_tensors']:,} freed so far), so what "
            "leaks is the nodes themselves, a little memory per step. With `.item()` the total is a float "
            "and holds nothing."
        )
        st.markdown("**Then the mistake bites:** at the end of the epoch, someone calls `running_loss.backward()`:")
        message = pitfalls.second_backward(data, lib.Config(**base), steps=3)
        st.error(f"RuntimeError: {message}")
        produced, summed = pitfalls.stale_gradient(data, lib.Config(**base), steps=5)
        retained = last.loc["+= loss, retain_graph=True"]
        st.markdown(
            "This is torch's own error, raised just now and caught: the walk back from `running_loss` reaches "
            "step 1's `MseLossBackward0` node, whose saved tensors that step's `backward()` freed.\n\n"
            "**The fix.** Keep running totals as numbers: `running_loss += loss.item()` (or `loss.detach()` "
            "if you want to stay on the device and call `.item()` once at the end). If you really want the "
            "gradient of a sum of losses, add the losses first and call `backward()` once.\n\n"
            "**Why not `retain_graph=True`, as the message suggests?** It silences the error, but every "
            f"step's saved tensors then stay alive: {retained['saved_bytes'] / 1024:,.1f} KiB after {steps} "
            "steps here, growing with each step (the rising line in the second chart). And the gradient "
            "`running_loss.backward()` then adds into `.grad` is the sum of the old gradients, each taken at "
            "weights that no longer exist and each already used by its own step: over 5 steps, "
            f"{np.array2string(produced, precision=4)} against the sum of the 5 step gradients "
            f"{np.array2string(summed, precision=4)}."
        )
    else:
        st.caption("Switch on to measure what the tensor keeps alive and to trigger the real error.")

# 3. The 1/2 and mean/sum conventions mixed between the two loops.
with tabs[2]:
    st.markdown(
        "**The mistake.** The hand loop and the torch loop use different loss conventions, e.g. the "
        "textbook's `1/2 · mean` by hand against `nn.MSELoss()` (a mean with no 1/2). The gradients then "
        "differ by a constant factor, so the same learning rate takes different steps: the loops stop agreeing."
    )
    col1, col2 = st.columns(2)
    with col1:
        hand = drawn.select(
            "hand loop convention", CONVENTIONS, "pitfall_hand_loss", "half_mse", format_func=LABELS.get
        )
    with col2:
        theirs = drawn.select("torch loop convention", CONVENTIONS, "pitfall_torch_loss", "mse", format_func=LABELS.get)
    if drawn.check("Mix the conventions between the loops", "pitfall_mixed", False, toggle=True):
        mixed = run(data_args, **(base | {"loss": theirs}), manual_loss=hand)
        agreed = run(data_args, **(base | {"loss": theirs}))
        b = min(int(batch_size), int(m))
        predicted = lib.effective_lr_ratio(hand, theirs, b)
        c1, c2, c3 = st.columns(3)
        c1.metric("predicted step factor, hand / torch", f"{predicted:.6g}", help="lib.effective_lr_ratio")
        c2.metric(
            "measured from the first update",
            f"{pitfalls.measured_step_ratio(mixed):.6g}",
            help="|Δw hand| / |Δw torch|",
        )
        c3.metric("manual vs torch, max |diff|", f"{mixed.max_abs_diff:.3g}")
        if hand == theirs:
            st.info("Both loops use the same convention: there is no mismatch, and the factor is 1.")
        if not mixed.done:
            st.warning(mixed.message())
        target = lib.least_squares(data, True)
        dist = {
            "mistake, manual": np.linalg.norm(mixed.manual.weights - target, axis=1),
            "mistake, torch": np.linalg.norm(mixed.torch.weights - target, axis=1),
            "correct": np.linalg.norm(agreed.manual.weights - target, axis=1),
        }
        lines(dist, "Distance of the weights from the least-squares solution", "|w - w*| (log)")
        st.caption("The torch loop runs the same in both runs, so the grey line lies under the dashed one.")
        st.markdown(
            "Losses under different conventions are not comparable numbers, so this chart shows the distance "
            "to the weights every convention converges to. The factor comes from the gradients: "
            "mse is 2/b · Aᵀ(Aw − y), half_mse 1/b · Aᵀ(Aw − y), sse 2 · Aᵀ(Aw − y), with b the batch size "
            f"(here {b}). So mse steps twice as far as half_mse at the same learning rate, and sse b times as "
            "far as mse. **The fix:** use the same convention in both, or scale the learning rate by the factor."
        )
    else:
        st.caption("Switch on to run the hand loop with one convention and torch with the other.")

# 4. A learning rate above the stability limit.
with tabs[3]:
    full = drawn.check("full batch (the limit is exact only then)", "pitfall_full_batch", True)
    cfg4 = base | {"batch_size": int(m) if full else int(batch_size)}
    limit4 = pitfalls.stability_limit(data, lib.Config(**cfg4))
    st.markdown(
        f"**The limit.** For a linear model the loss is a quadratic with Hessian H = ${FORMULA[loss]}$ (A is X "
        "with a column of ones for the bias). One full-batch step multiplies the error along H's top "
        "eigenvector by 1 − lr·λ_max, so gradient descent converges for lr < 2/λ_max and diverges above. "
        f"Here: **2/λ_max = {limit4:.4g}**."
    )
    if not full:
        st.caption(
            "With minibatches each step sees its own batch's Hessian, whose λ_max scatters around the average: "
            "the limit is then a guide, not a sharp edge, and rates somewhat below it can already blow up."
        )
    ratios = np.linspace(0.0, 2.2, 221)
    factors = pitfalls.growth_factor(data, lib.Config(**cfg4), ratios * limit4)
    if drawn.check("Cross the stability limit", "pitfall_limit", False, toggle=True):
        factor = drawn.slider("learning rate of the mistake, × the limit", "pitfall_factor", 1.01, 2.0, 1.10, 0.01)
        above = run(data_args, **(cfg4 | {"lr": factor * limit4}))
        below = run(data_args, **(cfg4 | {"lr": (2 - factor) * limit4}))
        marks = {"limit": 1.0, f"mistake ({factor:g}×)": factor, f"correct ({2 - factor:.2g}×)": 2 - factor}
        lines(
            {"worst error factor per step": factors},
            "max |1 − lr·λ| over the Hessian's eigenvalues: above 1, an error grows every step",
            "growth per step",
            log=False,
            x=ratios,
            x_title="learning rate ÷ stability limit",
            rules=marks,
        )
        c1, c2 = st.columns(2)
        c1.metric(f"mistake: learning rate, {factor:g}× the limit", f"{factor * limit4:.4g}")
        c2.metric(f"correct: learning rate, {2 - factor:.2g}× the limit", f"{(2 - factor) * limit4:.4g}")
        runs = {"mistake, manual": above.manual.loss, "mistake, torch": above.torch.loss, "correct": below.manual.loss}
        lines(runs, "Loss: just above the limit it grows, just below it falls", "loss (log)")
        st.markdown(
            f"Mistaken run: the loss went from {above.manual.loss[0]:.3g} to {above.manual.loss[-1]:.3g} in "
            f"{above.steps:,} steps; correct run: from {below.manual.loss[0]:.3g} to {below.manual.loss[-1]:.3g}. "
            f"Along the top eigenvector each step multiplies the error by |1 − lr·λ_max|: {2 * factor - 1:.3g} "
            f"at {factor:g}× the limit (the loss by its square, {(2 * factor - 1) ** 2:.3g}), "
            f"{3 - 2 * factor:.3g} at {2 - factor:.2g}×."
        )
        st.markdown(
            "**The fix.** Keep the learning rate below 2/λ_max. Note that the limit depends on the loss "
            "convention (sse's is b times smaller than mse's) and on the scale of the inputs: standardising "
            "the features lowers λ_max and raises the limit."
        )
    else:
        lines(
            {"worst error factor per step": factors},
            "max |1 − lr·λ| over the Hessian's eigenvalues: above 1, an error grows every step",
            "growth per step",
            log=False,
            x=ratios,
            x_title="learning rate ÷ stability limit",
            rules={"limit": 1.0, "your lr": min(lr / limit4, 2.2)},
        )
        st.caption("Switch on to run just above and just below the limit.")

# 5. float32 in the torch loop against float64 in the hand loop.
with tabs[4]:
    st.markdown(
        "**The mistake.** One loop in single precision: here torch in `float32` (the default dtype of "
        "`torch.tensor` on floats and of `nn.Linear`), the hand loop in numpy's `float64`. float32 keeps "
        "about 7 significant digits (machine epsilon 1.2e-7), float64 about 16 (2.2e-16)."
    )
    if drawn.check("Run the torch loop in float32", "pitfall_float32", False, toggle=True):
        single, correct = run(data_args, **base, torch_dtype="float32"), run(data_args, **base)
        c1, c2 = st.columns(2)
        c1.metric("max |diff|, torch in float32", f"{single.max_abs_diff:.2e}")
        c2.metric("max |diff|, both float64", f"{correct.max_abs_diff:.2e}")
        drift = {
            "mistake: torch float32, manual float64": single.step_diff,
            "correct: both float64": correct.step_diff,
        }
        lines(drift, "Largest |manual − torch| over the weights, after each step", "max |diff| (log)")
        zeros = int(np.sum(correct.step_diff == 0))
        st.markdown(
            "The drift appears at the first step, as rounding in every product and sum, and then stays "
            "near float32's resolution of the weights (converging steps damp old errors as fast as new "
            "ones arrive). It is not a bug, but it is why the twin loops are compared in float64: "
            "agreement to 1e-15 proves the code is the same; agreement to 1e-7 only proves it is close. "
            f"Steps where the float64 loops agree exactly (a difference of 0: {zeros:,} here) cannot be "
            "drawn on a log scale and are left out."
        )
    else:
        st.caption("Switch on to run the torch loop in single precision.")

if first_run:
    st.session_state[URL_CHECKED] = True
    with link_notes:
        for note in url_notes(asked, drawn):
            st.warning(note)
