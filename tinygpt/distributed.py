"""One model on many processes, on PyTorch's own engine (torch.distributed: DDP, FSDP2).

Three ways in, one behaviour (docs/guides/distributed.md):

- ``torchrun --nproc_per_node 2 $(which tinygpt) hardware.devices=2 …``: torchrun sets RANK,
  LOCAL_RANK, WORLD_SIZE and the rendezvous; ``tinygpt``'s entry point joins the process group
  before Hydra composes, so the ranks agree on the run directory (rank 0's clock for ``${now:}``).
- ``tinygpt hardware.devices=2 …``: the job starts its own ranks with torch's elastic launcher
  (``python -m torch.distributed.run --standalone``) into its own run directory, and waits.
- SLURM tasks (``hydra/launcher=slurm_cpu|slurm_gpu hardware.devices=… hardware.nodes=…``): each
  task is a rank; who it is comes from submitit's ``JobEnvironment``, and the variables
  torch.distributed reads are set only where SLURM left them unset (not through
  ``TorchDistributedEnvironment``, which would rewrite CUDA_VISIBLE_DEVICES).

Rank 0 alone owns the MLflow run, writes checkpoints, results and the logged model; every rank
keeps a log of its own beside the job's.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinygpt.errors import TinyGPTError

if TYPE_CHECKING:
    import torch

# torch is imported where a function needs it, not here: `tinygpt` imports this module at start,
# and a bad setting should be answered before torch's 2-3 s import (tests/test_bad_input.py).

STRATEGIES = ("auto", "ddp", "fsdp")
# A peer that died is noticed by gloo in about half a second; a slow rank must not time out.
TIMEOUT = dt.timedelta(minutes=30)


@dataclass(frozen=True)
class World:
    """This process's place among the job's ranks (one process: rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1
    local_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env() -> World:
    """The world torchrun (or any launcher following its convention) describes."""
    env = os.environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return World()
    size = int(env["WORLD_SIZE"])
    return World(
        int(env["RANK"]),
        int(env.get("LOCAL_RANK", 0)),
        size,
        int(env.get("LOCAL_WORLD_SIZE", size)),
    )


def from_slurm() -> World | None:
    """The world of a submitit job with several tasks, its variables exported for torch."""
    if "SUBMITIT_EXECUTOR" not in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) < 2:
        return None
    import submitit

    job = submitit.JobEnvironment()
    world = World(
        job.global_rank, job.local_rank, job.num_tasks, job.num_tasks // max(1, job.num_nodes)
    )
    # Set only what SLURM and the user left unset; a port from the job id, so two jobs sharing
    # a node do not collide.
    port = 20000 + zlib.crc32(str(job.job_id).encode()) % 20000
    for key, value in {
        "MASTER_ADDR": job.hostnames[0],
        "MASTER_PORT": str(port),
        "RANK": str(world.rank),
        "WORLD_SIZE": str(world.size),
        "LOCAL_RANK": str(world.local_rank),
        "LOCAL_WORLD_SIZE": str(world.local_size),
    }.items():
        os.environ.setdefault(key, value)
    return world


def current() -> World:
    return from_env() if "RANK" in os.environ else (from_slurm() or World())


def backend() -> str:
    """gloo for CPU tensors and nccl for CUDA ones where this torch has NCCL."""
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def init(world: World) -> None:
    """Join the process group (once) described by the environment (``env://``)."""
    import torch.distributed as dist

    if world.enabled and not dist.is_initialized():
        dist.init_process_group(
            backend=backend(), rank=world.rank, world_size=world.size, timeout=TIMEOUT
        )


def active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def group_world() -> World:
    """The world of the process group this process has joined (one process: rank 0 of 1)."""
    import torch.distributed as dist

    if not active():
        return World()
    return World(dist.get_rank(), 0, dist.get_world_size())


def shutdown(together: bool) -> None:
    """Leave the process group.

    ``together``: every rank is leaving at this same point (training finished, or a stop all
    ranks agreed on), so they meet at a barrier first: a rank that tears its gloo threads down
    while a peer is still talking to it can abort ("terminate called without an active
    exception"). After a failure there is no barrier: the peers may be inside another collective
    and would wait for the group's timeout; closing this rank's connections is what tells them.
    """
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    if together:
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()
        return
    try:
        dist.destroy_process_group()
    except Exception as e:  # the job has already failed; its own error is the one to show
        logging.getLogger(__name__).debug("leaving the process group after a failure: %s", e)


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (a pickled object: small things only)."""
    import torch.distributed as dist

    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the ranks, in place (on CPU for gloo)."""
    import torch.distributed as dist

    if active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool) -> bool:
    """True on every rank if it is true on any: one decision for a stop signal."""
    import torch
    import torch.distributed as dist

    if not active():
        return flag
    t = torch.tensor([int(flag)])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def agree_on_now() -> None:
    """Every rank resolves ``${now:…}`` to rank 0's clock, so they compose one run directory."""
    from omegaconf import OmegaConf

    stamp = broadcast(dt.datetime.now().isoformat())
    moment = dt.datetime.fromisoformat(stamp)
    OmegaConf.register_new_resolver(
        "now", lambda pattern: moment.strftime(pattern), use_cache=True, replace=True
    )


def rank_log(out: Path, world: World) -> None:
    """Ranks other than 0 write to ``<job>.rank<r>.log`` beside the job's log, not into it."""

    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            path = Path(handler.baseFilename)
            root.removeHandler(handler)
            handler.close()
            rank_handler = logging.FileHandler(path.with_suffix(f".rank{world.rank}.log"), "w")
            rank_handler.setFormatter(handler.formatter)
            root.addHandler(rank_handler)


def error_file(out: Path, rank: int) -> Path:
    return out / f"rank{rank}.error"


def record_error(out: Path, world: World, error: BaseException) -> None:
    """A rank's own error, where rank 0 and the launcher can read it (Hydra swallows a task's
    exception and the other ranks see only a closed connection)."""
    import traceback

    text = "".join(traceback.format_exception(error)).strip()
    error_file(out, world.rank).write_text(f"rank {world.rank}: {text}")


def errors_of_others(out: Path, world: World, wait_s: float = 3.0) -> list[str]:
    """The other ranks' recorded errors (waiting briefly: they write as they fail)."""
    import time

    deadline = time.monotonic() + wait_s
    while True:
        found = [
            error_file(out, r).read_text()
            for r in range(world.size)
            if r != world.rank and error_file(out, r).exists()
        ]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def spawn(devices: int, out: Path, threads: int | None) -> None:
    """Run this same command as ``devices`` ranks on this machine with torch's elastic launcher
    into ``out``; a failed rank's own error is raised here."""
    for stale in out.glob("rank*.error"):
        stale.unlink()
    args = [a for a in sys.argv[1:] if not a.startswith("hydra.run.dir=")]
    env = dict(os.environ)
    if threads is None and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // devices))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={devices}",
        "-m",
        "tinygpt.app",
        *args,
        f"hydra.run.dir={out}",
    ]
    # The launcher's own report of a failure (ChildFailedError, exit codes, "To enable
    # traceback ...") and the ranks' tracebacks go to a file: the user reads the rank's own
    # one-line error, and the file is named for the rest.
    launcher_log = out / "ranks.stderr.log"
    with launcher_log.open("ab") as stderr:
        proc = subprocess.Popen(cmd, env=env, stderr=stderr)
    interrupted = False
    while proc.poll() is None:
        try:
            proc.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached the ranks too: they stop at the end of a step and checkpoint.
            interrupted = True
    errors = sorted(p.read_text().strip() for p in out.glob("rank*.error"))
    if errors:
        raise RanksFailed(errors, launcher_log)
    if proc.returncode and interrupted:
        raise KeyboardInterrupt
    if proc.returncode:
        raise RanksFailed([f"the ranks exited {proc.returncode}"], launcher_log)


class RanksFailed(RuntimeError):
    """One or more ranks of a job failed; their own errors are the message."""

    def __init__(self, errors: list[str], log: Path) -> None:
        # One line: the first rank's own error (they are most often the same) as its traceback's
        # last line ("rank 1: RuntimeError: ..."), the rest named.
        lines = errors[0].splitlines() or ["no message"]
        rank = lines[0].split(":", 1)[0] if lines[0].startswith("rank ") else ""
        last = lines[-1].removeprefix("tinygpt.errors.TinyGPTError: ")
        first = f"{rank}: {last}" if rank and not last.startswith(rank) else last
        more = f" ({len(errors)} ranks failed)" if len(errors) > 1 else ""
        super().__init__(f"{first}{more}; every rank's output in {log}")


def check_world(
    world: World, devices: int, nodes: int, strategy: str, device_type: str, batch_size: int
) -> None:
    """The job's settings against the world it runs in: one line per mismatch."""
    want = devices * nodes
    if want > 1 and batch_size % want:
        raise TinyGPTError(
            f"{want} ranks cannot split training.batch_size={batch_size} evenly (each micro-step's "
            f"batch is shared out across the ranks): make it a multiple of {want}"
        )
    if world.enabled and world.size != want:
        raise TinyGPTError(
            f"hardware.devices={devices} x hardware.nodes={nodes} = {want} ranks, but the "
            f"launcher started {world.size}: set them to match (torchrun --nproc_per_node, SLURM "
            "tasks_per_node x nodes)"
        )
    if strategy not in STRATEGIES:
        raise TinyGPTError(f"hardware.strategy={strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if strategy == "fsdp" and device_type not in ("cpu", "cuda"):
        raise TinyGPTError(
            f"hardware.strategy=fsdp needs cuda (nccl) or cpu (gloo), not {device_type}: use "
            "hardware.strategy=ddp"
        )
