"""The data-parallel run as a standalone torchrun script: DDP in every process, the hand twin on
rank 0, assembled from lib's own source as lib.to_script is."""

from __future__ import annotations

from ..engine import parallel
from ..engine.config import Config
from ..engine.data import Dataset, initial_weights
from .export import (
    MAX_EMBEDDED,
    MAX_READABLE,
    _Assembler,
    _config_call,
    _embedded_data,
    _init_how,
    _one_line,
    _settings,
)

_MAIN = '''
SET_EPOCH = SET_EPOCH_VALUE  # False forgets sampler.set_epoch(epoch): every epoch repeats the first


def main() -> None:
    """Train in every process torchrun started; rank 0 prints both loops' final weights."""
    weights = TORCHRUN_MAIN(DATA, CONFIG, SET_EPOCH)
    if weights is None:  # not rank 0
        return
    w_m, w_t = np.array(weights["manual"]), np.array(weights["torch"])
    print(f"{'weight':>12} {'manual':>24} {'torch (DDP)':>24}")
    for name, a, b in zip(WEIGHT_NAMES, w_m, w_t):
        print(f"{name:>12} {float(a)!r:>24} {float(b)!r:>24}")
    print(f"largest |manual - torch| after the last step: {np.max(np.abs(w_m - w_t)):.3g}")
    print(json.dumps(weights))


if __name__ == "__main__":
    main()
'''


def to_torchrun_script(
    data: Dataset, cfg: Config, workers: int = 2, *, set_epoch: bool = True
) -> str:
    """A standalone script (numpy and torch only) for `torchrun --nproc_per_node=WORKERS`.

    Every process trains its shard with DistributedDataParallel (gloo); rank 0 also runs the hand
    twin of the same steps and prints, last, JSON {"manual": [...], "torch": [...]} of the final
    weights, which lib.run_parallel(data, cfg, workers) reproduces. The code is lib's, copied from
    lib.engine.parallel.torchrun_main and every function it reaches.
    """
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a lib.Dataset; got {type(data).__name__}")
    if not isinstance(cfg, Config):
        raise ValueError(f"cfg must be a lib.Config; got {type(cfg).__name__}")
    parallel.check_parallel(data, cfg, workers)
    if data.m * (data.n + 1) > MAX_EMBEDDED:
        raise ValueError(
            f"the data has {data.m * (data.n + 1):,} numbers, too many to embed in a script "
            f"(at most {MAX_EMBEDDED:,})"
        )
    if not isinstance(set_epoch, bool):
        raise ValueError(f"set_epoch must be True or False; got {set_epoch!r}")
    code = _Assembler()
    entry = code.add_entry(parallel.torchrun_main)
    if data.m * (data.n + 1) > MAX_READABLE:
        code.import_lines.add("import base64")
    main = _MAIN.replace("TORCHRUN_MAIN", entry).replace("SET_EPOCH_VALUE", repr(set_epoch))
    parts = [
        _header(data, cfg, workers, set_epoch),
        code.imports(),
        "# ---- Stand-ins for lib's Config and Dataset, and for what lib computed ----",
        *code.standins(init_how=_init_how(cfg)),
        "# ---- The code lib.run_parallel's workers and its hand twin execute, copied from lib's "
        "source (lib/engine/parallel.py, lib/twins/parallel.py, lib/twins/manual.py, ...) ----",
        *code.pieces(),
        _settings(data, cfg, initial_weights(data, cfg)),
        _embedded_data(data),
        main,
    ]
    return "\n\n\n".join(part.strip("\n") for part in parts) + "\n"


def _header(data: Dataset, cfg: Config, workers: int, set_epoch: bool) -> str:
    call = f"lib.run_parallel(data, {_config_call(cfg)}, workers={workers}"
    call += ")" if set_epoch else ", set_epoch=False)"
    return f'''"""Data-parallel training under DistributedDataParallel, and its numpy twin by hand.

Needs only numpy and torch. On one machine, {workers} processes:
    torchrun --standalone --nproc_per_node={workers} this_file.py
On several machines, say 2 with {workers} processes each, the same command on each of them, with
the first machine's address as the rendezvous endpoint and a job id of your choosing:
    torchrun --nnodes=2 --nproc_per_node={workers} --rdzv-id=twins --rdzv-backend=c10d \\
        --rdzv-endpoint=FIRST_MACHINE:29500 this_file.py
Gloo picks the network interface from the host name; GLOO_SOCKET_IFNAME=eth0 (or lo, for one
machine) names it. Every process reads the whole data set below and trains on its own shard.

The hand twin follows however many processes run (torchrun's WORLD_SIZE). With {workers} in all,
the run is {call}.
Data: {_one_line(data.name)}, {data.m:,} samples x {data.n} features, embedded below.
The last line rank 0 prints is JSON {{"manual": [...], "torch": [...]}}: each loop's final weights.
"""'''
