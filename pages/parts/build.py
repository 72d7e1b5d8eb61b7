"""The Config builder: the Dataset and lib.Config that the sidebar's values describe, or a
ValueError that says in words why they cannot be used."""

from __future__ import annotations

import inspect

import numpy as np

import lib
from lib.engine import lockstep as run_checks
from lib.twins.schedules import torch_keywords
from pages.parts.cached import csv_arrays, linear_data
from pages.parts.labels import RUN_DECIDED
from pages.parts.presets import preset_dataset

MAX_NUMBERS = 5_000_000  # samples x features of the synthetic data: 40 MB of float64, plenty here


def parse_init(choice: str, text: str):
    """The init for lib.Config: a name, or the numbers typed in."""
    if choice != "custom":
        return choice
    try:
        return [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ValueError(
            f"initial weights must be numbers separated by commas; got {text!r}"
        ) from None


def build(v: dict) -> tuple[lib.Dataset, lib.Config, dict]:
    """The Dataset and Config the controls describe, and where the data came from; ValueError in
    words."""
    if v.get("problem"):
        raise ValueError(v["problem"])
    cfg = _config(v)
    data, source = _data(v, cfg)
    _check_targets(data, cfg)
    # the checks lib.run makes (e.g. iterations x weights is capped)
    run_checks.check_run(data, cfg)
    lib.initial_weights(data, cfg)  # custom initial weights of the wrong length
    return data, cfg, source


def _config(v: dict) -> lib.Config:
    return lib.Config(
        lr=v["lr"],
        batch_size=int(v["batch_size"]),
        iterations=int(v["iterations"]),
        loss=v["loss"],
        bias=v["bias"],
        init=parse_init(v["init"], v["init_values"]),
        seed=int(v["seed"]),
        zero_grad=v["zero_grad"],
        optimizer=v["optimizer"],
        optimizer_kwargs=v["optimizer_kwargs"],
        model=v["model"],
        hidden=int(v["hidden"]),
        activation=v["activation"],
        scheduler=v.get("scheduler"),
        scheduler_kwargs=schedule_kwargs(v.get("scheduler"), v.get("scheduler_raw", {})),
        # 0 in these widgets stands for None: no clipping, lib's own eval interval
        clip_grad_norm=v.get("clip_grad_norm") or None,
        accumulate=int(v.get("accumulate", 1)),
        val_fraction=v.get("val_fraction", 0.0),
        eval_every=int(v["eval_every"]) if v.get("eval_every") else None,
        drop_last=v.get("drop_last", False),
    )


def parse_steps(text: str) -> tuple[int, ...]:
    """MultiStepLR's milestones from the text typed in: "250, 400" -> (250, 400)."""
    parts = [part.strip() for part in str(text).replace(";", ",").split(",") if part.strip()]
    try:
        steps = tuple(int(part) for part in parts)
    except ValueError:
        raise ValueError(
            f"milestones must be whole step numbers separated by commas; got {text!r}"
        ) from None
    if not steps:
        raise ValueError("MultiStepLR needs at least one milestone, e.g. 250, 400")
    return steps


def schedule_kwargs(name: str | None, raw: dict) -> dict:
    """scheduler_kwargs of the schedule widgets' values: milestones parsed, a run-decided setting
    at 0 (T_max, max_lr) and a setting at torch's own default left out, as a user's call does."""
    if name is None:
        return {}
    defaults = torch_keywords(name)
    kwargs = {}
    for arg, value in raw.items():
        if arg == "milestones":
            value = parse_steps(value)
        if f"{name}_{arg}" in RUN_DECIDED and value == 0:
            continue
        default = defaults.get(arg, inspect.Parameter.empty)
        if type(default) is type(value) and default == value:
            continue
        kwargs[arg] = value
    return kwargs


def _data(v: dict, cfg: lib.Config) -> tuple[lib.Dataset, dict]:
    """The data of the chosen source, and where it came from (for the exported script)."""
    source = {"kind": v["source"]}
    if v["source"] == "synthetic":
        if v["samples"] * v["n"] > MAX_NUMBERS:
            raise ValueError(
                f"samples x features must be at most {MAX_NUMBERS:,} here; "
                f"got {v['samples']:,} x {v['n']:,}. Use fewer samples or fewer features"
            )
        return linear_data(v["n"], v["samples"], v["noise"], v["seed"]), source
    if v["source"] != "csv":
        return preset_dataset(v["source"], v["seed"]), source
    args = (v["standardize"], v["drop"], cfg.loss == "bce")
    X, y, names, name, dropped = csv_arrays(v["raw"], v["name"], v["target"], v["features"], *args)
    # The exported script reads the file itself: as is only when nothing was rescaled or left out.
    as_is = not v["standardize"] and dropped == 0
    source.update(file=v["name"], target=v["target"], as_is=as_is, dropped=dropped)
    return lib.Dataset(X, y, feature_names=names, name=name), source


def _check_targets(data: lib.Dataset, cfg: lib.Config) -> None:
    """A classifier's targets are 0s and 1s; else a ValueError that offers this model a way out."""
    if cfg.loss == "bce" and not np.isin(data.y, (0.0, 1.0)).all():
        shown = ", ".join(f"{t:g}" for t in np.unique(data.y)[:4])
        raise ValueError(
            "the bce loss trains a classifier, which needs targets of 0 and 1, but "
            f"{data.name} has targets like {shown}. Choose the blobs or moons preset or a 0/1 "
            "target column, or "
            + (
                "the linear model with a squared loss (logistic trains with bce only)"
                if cfg.model == "logistic"
                else "a squared loss (mse)"
            )
        )
