"""Data parallel: the torch loop in worker processes under DistributedDataParallel, beside its hand
twin, whose all-reduce is a sum you can check."""

import inspect

import pandas as pd
import streamlit as st

import lib
from lib.charts.parallel import shards_chart
from lib.engine import parallel
from lib.engine.lockstep import training_arrays
from lib.twins.parallel import manual_ddp_loop, shard_gradient, step_rows
from pages.parts.navigation import through_navigation

MAX_ROWS = 400  # rows of data the page offers
MAX_ITERATIONS = 1_000  # optimizer steps per run: 2 to 15 ms each with 2 to 4 workers here
TIME_LIMIT = 20.0  # seconds a run may hold the shared server's cores
BUDGET_MB = 600  # the deployment's memory budget (README, Deploy): the server and its workers
DATA_KINDS = ("regression: a noisy line (2 features)", "classification: two blobs")
RUN = "parallel_run"  # session_state: (the controls' values, the result, the one-process result)
state = st.session_state


def controls() -> dict:
    """The page's widgets; their values by name."""
    left, middle, right = st.columns(3)
    with left:
        kind = st.selectbox("Data", DATA_KINDS, key="parallel_data")
        rows = st.number_input("Rows", 2, MAX_ROWS, 40, key="parallel_rows")
        seed = st.number_input("Seed", 0, 10_000, 0, key="parallel_seed")
    with middle:
        workers = st.radio("Workers", (2, 3, 4), horizontal=True, key="parallel_workers")
        batch = st.number_input(
            "Per-worker batch size", 1, MAX_ROWS, 20, key="parallel_batch",
            help="DataLoader(batch_size=...) in each worker: a step sees workers x this many rows.",
        )  # fmt: skip
        set_epoch = st.checkbox(
            "Call sampler.set_epoch(epoch)", True, key="parallel_set_epoch",
            help="Without it DistributedSampler shuffles every epoch the same way.",
        )  # fmt: skip
    with right:
        lr = st.number_input("Learning rate", 1e-4, 10.0, 0.05, format="%g", key="parallel_lr")
        iterations = st.number_input("Iterations", 1, MAX_ITERATIONS, 100, key="parallel_iters")
        optimizer = st.selectbox("Optimizer", ("sgd", "adam"), key="parallel_optimizer")
        loss = "bce"
        if not kind.startswith("classification"):
            loss = st.selectbox("Loss", ("mse", "sse"), key="parallel_loss")
    return dict(
        kind=kind, rows=int(rows), seed=int(seed), workers=int(workers), batch=int(batch),
        set_epoch=bool(set_epoch), lr=float(lr), iterations=int(iterations), optimizer=optimizer,
        loss=loss,
    )  # fmt: skip


def build(v: dict) -> tuple[lib.Dataset, lib.Config]:
    """The data set and Config of the controls' values (a ValueError in words if they clash)."""
    if v["kind"].startswith("classification"):
        data, model = lib.datasets.blobs(m=v["rows"], seed=v["seed"]), "logistic"
    else:
        data, model = lib.datasets.linear(m=v["rows"], n=2, noise=0.1, seed=v["seed"]), "linear"
    cfg = lib.Config(
        lr=v["lr"], batch_size=v["batch"], iterations=v["iterations"], seed=v["seed"],
        model=model, loss=v["loss"], optimizer=v["optimizer"],
    )  # fmt: skip
    return data, cfg


def step_gradients(data: lib.Dataset, result, t: int) -> pd.DataFrame:
    """Step t's gradients: each worker's, their sum, DDP's mean, torch's .grad, one process's."""
    cfg, workers = result.config, result.workers
    inputs, labels, _, _ = training_arrays(data, cfg)
    layout = cfg.layout(data.n)
    _, whole = shard_gradient(inputs, labels, result.manual.weights[t], layout, cfg.loss)
    local = result.worker_gradients[t]
    columns = {f"worker {r}": local[r] for r in range(workers)}
    columns["sum (all-reduce)"] = local.sum(axis=0)
    columns[f"sum / {workers} (DDP applies)"] = local.sum(axis=0) / workers
    columns["torch .grad (worker 0)"] = result.torch_reduced[t]
    columns[f"one process, all {data.m} rows"] = whole
    return pd.DataFrame(columns, index=list(result.weight_names))


def show_step(data: lib.Dataset, result, t: int) -> None:
    """Step t: the workers' batches drawn, padding named, and the gradients side by side."""
    cfg, workers = result.config, result.workers
    epoch, rows, padded = step_rows(
        data.m, workers, cfg.batch_size, cfg.seed, t, set_epoch=result.set_epoch
    )
    title = f"Step {t}: the batch of each worker (epoch {epoch})"
    st.altair_chart(shards_chart(rows, padded, title), width="stretch")
    pairs = zip(rows, padded, strict=True)
    repeats = [(r, int(row)) for r, (taken, pad) in enumerate(pairs) for row in taken[pad]]
    per = -(-data.m // workers)
    if repeats:
        named = ", ".join(f"row {row} on worker {r}" for r, row in repeats)
        st.markdown(
            f"Starred cells are padding: {data.m} rows do not split evenly over {workers} "
            f"workers, so DistributedSampler repeats {per * workers - data.m} sample(s) of the "
            f"epoch's order to give each worker {per}; this batch holds {named}, which the "
            "epoch's order also holds elsewhere."
        )
    st.dataframe(step_gradients(data, result, t), width="stretch")
    st.caption(
        "Each worker's column is its own forward and backward pass on its own batch (the hand "
        "twin's numpy); the all-reduce adds them and DDP divides by the number of workers. The "
        "last column is the gradient one process takes on every row at the same weights."
    )


def show_timing(result) -> None:
    """Start-up apart from the steps."""
    per_step = result.step_seconds / result.steps * 1e3 if result.steps else float("nan")
    st.markdown(
        f"Wall time: starting the {result.workers} worker processes, joining their gloo process "
        f"group on 127.0.0.1 and building DDP took {result.startup_seconds:.2f} s; the "
        f"{result.steps:,} step{'s' if result.steps != 1 else ''} then took "
        f"{result.step_seconds:.2f} s ({per_step:.2f} ms a step)."
    )


def run(data: lib.Dataset, cfg: lib.Config, values: dict) -> None:
    """Run with a progress bar; keep the result (and one process's, with full shards)."""
    bar = st.progress(0.0, text="Starting the workers…")

    def report(partial):
        bar.progress(partial.steps / cfg.iterations, text=f"Step {partial.steps:,}")

    try:
        result = parallel.run_parallel(
            data, cfg, values["workers"], set_epoch=values["set_epoch"], progress=report,
            time_limit=TIME_LIMIT, memory_budget_mb=BUDGET_MB,
        )  # fmt: skip
        one = None
        if cfg.batch_size >= -(-data.m // values["workers"]):  # full shards: one process compares
            one = lib.run(data, cfg.replace(batch_size=data.m), time_limit=TIME_LIMIT)
        state[RUN] = (values, result, one)
    except (ValueError, RuntimeError) as err:
        state.pop(RUN, None)
        st.error(str(err))
    bar.empty()


through_navigation()
st.title("Data parallel")
st.markdown(
    "When a model outgrows one process, the training loop gains one invisible line: during "
    "`loss.backward()`, `DistributedDataParallel` **all-reduces** the gradients (adds every "
    "worker's) and divides by the number of workers. Here the torch loop runs in real worker "
    "processes (torch.distributed, gloo, on this machine), each on its own shard of the data from "
    "`DistributedSampler`; the hand twin computes each shard's gradient in numpy, adds them and "
    "divides, and the two are compared step by step. The batch size is each worker's, as in DDP."
)
values = controls()
try:
    data, cfg = build(values)
except ValueError as err:
    st.error(str(err))
    st.stop()
if st.button("Run", type="primary", key="parallel_go"):
    run(data, cfg, values)
stored = state.get(RUN)
if stored is None or stored[0] != values:
    st.info("Press **Run** to train with these settings (a run starts the worker processes anew).")
    st.stop()
_, result, one = stored
if not result.done:
    st.warning(result.message())
st.markdown("\n".join(f"- {'✓' if ok else '✗'} {text}" for ok, text in parallel.checks(result)))
show_timing(result)
st.markdown(parallel.one_process_text(data.m, result, one))
if epochs := parallel.epochs_text(data.m, result):
    st.markdown(epochs)

st.subheader("One step, worker by worker")
if result.steps:
    t = st.slider("Step", 0, result.steps - 1, 0, key="parallel_step") if result.steps > 1 else 0
    show_step(data, result, t)

st.subheader("Both loops")
left, right = st.columns(2)
left.altair_chart(lib.charts.loss_chart(result), width="stretch")
right.altair_chart(lib.charts.weights_chart(result), width="stretch")
st.altair_chart(lib.charts.diff_chart(result), width="stretch")

st.subheader("The code that ran")
with st.expander("Each worker: `ddp_train` (lib/engine/parallel.py)"):
    st.code(inspect.getsource(parallel.ddp_train), language="python")
with st.expander("The hand twin: `manual_ddp_loop` (lib/twins/parallel.py)"):
    st.code(inspect.getsource(manual_ddp_loop), language="python")
