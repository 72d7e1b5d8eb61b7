"""Code map: the five lines of the torch training step beside their hand-written twins, with live values."""

import inspect

import streamlit as st

import lib
from lib import explain
from lib.trace import Stepper
from pages.common import linear_data

MAX_ITERATIONS = 10_000
HELD, FAILED = ":green[**✓**]", ":red[**✗**]"
LOSS_LABELS = {
    "mse": "mse: MSELoss(), mean, no 1/2",
    "half_mse": "half_mse: 1/2 × mean (classic hand loop)",
    "sse": 'sse: MSELoss(reduction="sum")',
}


def dataset(m: int, n: int, noise: float, seed: int) -> lib.Dataset:
    return linear_data(n, m, noise, seed)  # cached once per server, shared with the other pages


@st.cache_data(max_entries=32, show_spinner="Checking every sentence against torch…", hash_funcs={lib.Config: repr})
def evidence(data_args: tuple, cfg: lib.Config) -> dict[str, explain.Evidence]:
    """Every claim's check on this data and Config (numpy-level results, so they cache)."""
    data = dataset(*data_args)
    return {c.key: explain.verify(c, data, cfg) for c in explain.CLAIMS if c.applies(cfg)}


@st.cache_data(max_entries=32, show_spinner=False, hash_funcs={lib.Config: repr})
def step_size_ratio(data_args: tuple, cfg: lib.Config, other: str) -> explain.Evidence:
    return explain.effective_lr(dataset(*data_args), cfg, other)


def controls() -> tuple[tuple, lib.Config]:
    """The sidebar: data and Config. Private to this page (persist_state keeps values across page switches)."""
    keep = {"persist_state": "session"}
    with st.sidebar:
        st.header("Data: y = X·w + b + noise")
        m = st.number_input("samples m", 2, 5_000, 100, step=10, key="map_m", **keep)
        n = st.number_input("features n", 1, 20, 3, key="map_n", **keep)
        noise = st.number_input("noise", 0.0, 100.0, 0.1, step=0.1, key="map_noise", **keep)
        st.header("Training")
        loss = st.selectbox("loss convention", tuple(LOSS_LABELS), format_func=LOSS_LABELS.get, key="map_loss", **keep)
        lr = st.number_input("learning rate", 1e-6, 1e3, 0.05, format="%.6g", key="map_lr", **keep)
        batch_size = st.number_input("batch size", 1, 5_000, 8, key="map_batch_size", **keep)
        iterations = st.number_input("iterations", 1, MAX_ITERATIONS, 100, step=10, key="map_iterations", **keep)
        bias = st.checkbox("learn a bias", True, key="map_bias", **keep)
        init = st.selectbox("initial weights", ("zeros", "normal"), key="map_init", **keep)
        zero_grad = st.checkbox("reset the gradient each step (zero_grad)", True, key="map_zero_grad", **keep)
        seed = st.number_input("seed (data and batch order)", 0, 2**32 - 1, 0, key="map_seed", **keep)
    data_args = (int(m), int(n), float(noise), int(seed))
    cfg = lib.Config(
        lr=float(lr),
        batch_size=int(batch_size),
        iterations=int(iterations),
        loss=loss,
        bias=bias,
        init=init,
        seed=int(seed),
        zero_grad=zero_grad,
    )
    return data_args, cfg


def values(pairs: list[tuple[str, object]]) -> str:
    """A row's live values as `name = value` lines, like a debugger's watch list."""
    return "\n".join(f"{name} = {explain.show(value)}" for name, value in pairs)


def claim(c: explain.Claim, e: explain.Evidence | None) -> None:
    """One sentence with its check: ✓ or ✗, and the numbers the check measured."""
    if e is None:
        st.markdown(f"– {c.text}  \n*Does not apply to this configuration.*")
        return
    measured = " · ".join(f"{label}: `{explain.show(v, 6)}`" for label, v in e.measured.items())
    mark = HELD if e.ok else f"{FAILED} **does not hold here:**"
    st.markdown(f"{mark} {c.text}  \n<small>Measured ({e.note}): {measured}</small>", unsafe_allow_html=True)


st.title("Code map")
st.markdown(
    "The five lines of a PyTorch training step, each beside its hand-written twin. The code is read from the "
    "two loop functions that the app runs (with `inspect`), so it is never a copy. Under each row: what the "
    "line computed at the step you pick, in a real run of the configuration in the sidebar, and the exact "
    f"explanation — each sentence checked against torch right now ({HELD} held, {FAILED} did not)."
)

data_args, cfg = controls()
data = dataset(*data_args)
if st.session_state.get("map_config") != (data_args, cfg):
    st.session_state["map_stepper"] = Stepper(data, cfg)
    st.session_state["map_config"] = (data_args, cfg)
stepper: Stepper = st.session_state["map_stepper"]

last = cfg.iterations - 1
# Step 1 by default: at step 0 the reset has nothing to clear yet.
st.session_state["map_step"] = min(st.session_state.get("map_step", 1), last)
picked = st.number_input(
    "Show the values of step", 0, last, key="map_step", help=f"Steps count from 0; this run has 0 – {last}."
)
step = stepper.run_to(int(picked))
if step.t != picked:
    st.warning(f"The run diverged at step {step.t}, so the values shown are that step's.")

manual_fn, torch_fn = stepper.functions
hand, twin = explain.phase_source(manual_fn), explain.phase_source(torch_fn)
checks = evidence(data_args, cfg)

left, right = st.columns(2)
left.markdown(f"### Hand-written: `lib.{manual_fn.__name__}` (numpy)")
right.markdown(f"### PyTorch: `lib.{torch_fn.__name__}`")
st.caption(f"Step {step.t}: a batch of {len(step.manual.indices)} samples; loss convention {LOSS_LABELS[cfg.loss]}.")

with st.expander("Before the loop: the model, the loss, the optimizer"):
    left, right = st.columns(2)
    left.code(hand[explain.SETUP], language="python", wrap_lines=True)
    right.code(twin[explain.SETUP], language="python", wrap_lines=True)

for row in explain.ROWS:
    st.divider()
    st.markdown(f"### {row.title}: `{row.manual}` ↔ `{row.torch}`")
    left, right = st.columns(2)
    left.code(hand[row.phase], language="python", wrap_lines=True)
    right.code(twin[row.phase], language="python", wrap_lines=True)
    hand_values, twin_values = explain.row_values(step, row.key)
    left.code(values(hand_values), language="python", wrap_lines=True)
    right.code(values(twin_values), language="python", wrap_lines=True)
    if row.key == "update":
        hand_optimizer = stepper.optimizers[0]
        with left.expander(f"What `optimizer.step(-d_weights)` runs: `{type(hand_optimizer).__name__}.step`"):
            st.code(inspect.getsource(type(hand_optimizer).step), language="python")
    st.markdown(row.text)
    for c in explain.claims_for(row.key):
        claim(c, checks.get(c.key))
    if row.key == "update":
        others = [name for name in LOSS_LABELS if name != cfg.loss]
        other = st.selectbox(
            f"Compare the step of torch's {cfg.loss!r} with a hand loop on",
            others,
            format_func=LOSS_LABELS.get,
            key="map_other",
        )
        e = step_size_ratio(data_args, cfg, other)
        st.markdown(
            f"Effective learning rate, {cfg.loss!r} over {other!r} at batch size {min(cfg.batch_size, data.m)}: "
            f"predicted by `lib.effective_lr_ratio` **{explain.show(e.measured.get('predicted'), 6)}**, measured "
            f"from one real step of both loops **{explain.show(e.measured.get('measured'), 6)}** "
            f"{HELD if e.ok else FAILED}"
        )

st.divider()
with st.expander("The two functions, whole"):
    left, right = st.columns(2)
    left.code(inspect.getsource(manual_fn), language="python")
    right.code(inspect.getsource(torch_fn), language="python")
