"""Side by side with the peers: genrec vs RecBole, Cornac and Surprise on one shared split.

    GENREC_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.peers.run \
        [--data ml-100k|PATH.csv] [--protocols strong weak ratings] [--threads 1] \
        [--epochs-ae 100] [--epochs-bpr 30] [--epochs-mf 40] [--every 5] [--timeout 900] \
        [--synthetic 20000x20000 --synthetic-epochs 2] \
        [--protocols text --epochs-convmf 3 --convmf-set cnn_epochs=1]

1. builds ``benchmarks/peers/.venv-peers`` with the peers (``venv.py``; once);
2. writes one split per protocol with genrec's splitters (``split.py``);
3. runs every (protocol, model, library) as its own process — genrec's runner in
   genrec's venv, each peer's adapter in the peers' venv — with the same thread
   count (OMP/MKL env + ``torch.set_num_threads``) and the same epoch budget;
4. scores every library's predictions with genrec's metrics (``score.py``) and
   writes ``results.json``, ``results.md`` and ``accuracy_vs_time.png``.

The ``text`` protocol (opt-in: ``--protocols text``) compares ConvMF with Cornac's
on ML-100K with the IMDB plots genrec matches to it; Cornac's ConvMF needs
TensorFlow, so it runs from a venv of its own (``.venv-peers-tf``, built on first
use). Both libraries get the same settings (``CONVMF_SHARED``, ``--convmf-set``)
and the same epoch budget, and see the same preprocessed words.

``--synthetic UxI`` instead times Mult-VAE only on a random click matrix of U users
x I items at ML-20M's click density (Liang et al.'s preprocessing: 10.0M clicks,
136,677 users, 20,108 items), for per-epoch speed at scale.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.peers import report
from benchmarks.peers.score import Row, score_run
from benchmarks.peers.split import SplitSettings, write_splits
from training.data.interactions import IdMap, Interactions
from training.key_values import parse_pairs

REPO = Path(__file__).resolve().parents[2]
ML20M_DENSITY = 10_000_000 / (136_677 * 20_108)


@dataclass(frozen=True)
class Library:
    """How to start one library's process: its interpreter and its module."""

    name: str
    python: str
    module: str


@dataclass(frozen=True)
class Job:
    protocol: str
    model: str
    library: str

    @property
    def runner(self) -> str:
        """The key of the process that runs it: ConvMF's peer lives in the TF venv."""
        return (
            f"{self.library}-tf"
            if self.model == "convmf" and self.library != "genrec"
            else self.library
        )


# Which library runs which model under which protocol (where the peer has the model).
PLAN: tuple[Job, ...] = (
    Job("strong", "mult-vae", "genrec"),
    Job("strong", "mult-vae", "recbole"),
    Job("strong", "mult-vae", "cornac"),
    Job("strong", "mult-dae", "genrec"),
    Job("strong", "mult-dae", "recbole"),
    Job("strong", "ease", "genrec"),
    Job("strong", "ease", "recbole"),
    Job("weak", "bpr-mf", "genrec"),
    Job("weak", "bpr-mf", "recbole"),
    Job("weak", "bpr-mf", "cornac"),
    Job("ratings", "biased-mf", "genrec"),
    Job("ratings", "biased-mf", "surprise"),
    Job("ratings", "biased-mf", "cornac"),
    Job("text", "convmf", "genrec"),
    Job("text", "convmf", "cornac"),
)
# ConvMF as both libraries can run it (the paper's model: no biases), in genrec's names.
# lambda 10/10 is what docs/accuracy-convmf.md uses for biases=false;
# one CNN pass per outer epoch because Cornac's takes minutes on one thread.
CONVMF_SHARED = {
    "biases": "false",
    "factors": "50",
    "lambda_u": "10",
    "lambda_v": "10",
    "cnn_epochs": "1",
    "max_len": "300",
}
ADAPTERS = {
    "recbole": "benchmarks.peers.adapters.recbole_adapter",
    "cornac": "benchmarks.peers.adapters.cornac_adapter",
    "surprise": "benchmarks.peers.adapters.surprise_adapter",
}


def libraries(peer_python: str | None, tf_python: str | None = None) -> dict[str, Library]:
    """genrec in this interpreter; the peers in the peers' venv (when there is one).

    ``cornac-tf`` is Cornac again, from the TensorFlow venv (ConvMF only)."""
    libs = {"genrec": Library("genrec", sys.executable, "benchmarks.peers.genrec_runner")}
    if peer_python:
        libs.update({name: Library(name, peer_python, mod) for name, mod in ADAPTERS.items()})
    if tf_python:
        libs["cornac-tf"] = Library("cornac", tf_python, ADAPTERS["cornac"])
    return libs


def thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    # The adapters import benchmarks.peers.adapters.common; keep what the caller had on the path.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def run_job(
    lib: Library,
    split: Path,
    model: str,
    epochs: int,
    every: int,
    threads: int,
    out: Path,
    timeout: float,
    device: str = "cpu",
    extra: Sequence[str] = (),
) -> Path:
    """Run one library on one model; its output directory (with result.json) or an error.

    ``extra`` are further runner arguments (genrec's ``--set KEY=VALUE``)."""
    out.mkdir(parents=True, exist_ok=True)
    command = [
        lib.python,
        "-m",
        lib.module,
        "--split",
        str(split.resolve()),
        "--model",
        model,
        "--epochs",
        str(epochs),
        "--every",
        str(every),
        "--threads",
        str(threads),
        "--out",
        str(out.resolve()),
        "--device",
        device,
        *extra,
    ]
    with open(out / "log.txt", "w") as log:
        log.write(shlex.join(command) + "\n")
        log.flush()
        done = subprocess.run(
            command,
            cwd=REPO,
            env=thread_env(threads),
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    if done.returncode != 0:
        tail = (out / "log.txt").read_text()[-2000:]
        raise RuntimeError(f"{lib.name} {model} failed (exit {done.returncode}):\n{tail}")
    return out


def synthetic_clicks(n_users: int, n_items: int, density: float, seed: int) -> Interactions:
    """A random click matrix at ``density`` with skewed item popularity and user activity.

    Item popularity follows a Zipf-like power law and user activity a lognormal,
    so batch shapes and sparsity resemble real click data; the clicks carry no
    signal, so only its timings mean anything.
    """
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.0, n_users)
    per_user = np.maximum(5, np.rint(activity / activity.mean() * density * n_items)).astype(int)
    per_user = np.minimum(per_user, n_items // 2)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity /= popularity.sum()
    users = np.repeat(np.arange(n_users), per_user)
    items = rng.choice(n_items, size=len(users), p=popularity)
    order = np.unique(users * n_items + items)  # drop repeated (user, item) pairs
    users, items = order // n_items, order % n_items
    return Interactions(
        users=users.astype(np.int64),
        items=items.astype(np.int64),
        ratings=np.full(len(users), 5.0, np.float32),
        timestamps=np.zeros(len(users), np.int64),
        user_ids=IdMap(tuple(str(u) for u in range(n_users))),
        item_ids=IdMap(tuple(str(i) for i in range(n_items))),
        explicit=True,
    )


def _epochs_for(model: str, args: argparse.Namespace) -> int:
    return {
        "bpr-mf": args.epochs_bpr,
        "biased-mf": args.epochs_mf,
        "ease": 1,
        "convmf": args.epochs_convmf,
    }.get(model, args.epochs_ae)


def _every_for(model: str, args: argparse.Namespace) -> int:
    """ConvMF runs a handful of (long) outer epochs: every one is a checkpoint."""
    return 1 if model == "convmf" else args.every


def convmf_shared(args: argparse.Namespace) -> list[str]:
    """The shared ConvMF settings (``--convmf-set`` on top of ``CONVMF_SHARED``) as ``--set``."""
    pairs = {**CONVMF_SHARED, **parse_pairs(args.convmf_set, "--convmf-set")}
    return [arg for key, value in pairs.items() for arg in ("--set", f"{key}={value}")]


def run_plan(
    plan: Sequence[Job],
    libs: dict[str, Library],
    splits: dict[str, Path],
    args: argparse.Namespace,
    runs: Path,
) -> list[Row]:
    """Every job whose library and protocol are available; a failed job is reported, not fatal."""
    rows: list[Row] = []
    for job in plan:
        if job.runner not in libs or job.protocol not in splits:
            continue
        out = runs / job.protocol / job.model / job.library
        t0 = time.perf_counter()
        try:
            if not (args.rescore and (out / "result.json").exists()):
                extra = genrec_extra(args) if job.library == "genrec" else []
                if job.model == "convmf":
                    extra = convmf_shared(args) + extra
                run_job(
                    libs[job.runner],
                    splits[job.protocol],
                    job.model,
                    _epochs_for(job.model, args),
                    _every_for(job.model, args),
                    args.threads,
                    out,
                    args.timeout,
                    args.device,
                    extra,
                )
            rows.append(score_run(out, splits[job.protocol]))
            status = f"{rows[-1].metrics}"
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            status = f"FAILED: {exc}"
        print(
            f"[{time.perf_counter() - t0:7.1f}s] {job.protocol} {job.model} {job.library}: "
            f"{status}",
            flush=True,
        )
    return rows


def genrec_extra(args: argparse.Namespace) -> list[str]:
    """``--genrec-set`` pairs as the genrec runner's ``--set`` arguments."""
    return [arg for pair in args.genrec_set for arg in ("--set", pair)]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", default="ml-100k", help="data spec for load_dataset")
    parser.add_argument("--data-dir", default=None, help="default: GENREC_DATA_DIR")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "peers")
    parser.add_argument("--protocols", nargs="+", default=["strong", "weak", "ratings"])
    parser.add_argument("--libraries", nargs="+", default=["genrec", *ADAPTERS])
    parser.add_argument("--models", nargs="+", default=None, help="default: every planned model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="torch device for genrec and RecBole")
    parser.add_argument("--epochs-ae", type=int, default=100, help="Mult-VAE/DAE epoch budget")
    parser.add_argument("--epochs-bpr", type=int, default=30)
    parser.add_argument("--epochs-mf", type=int, default=40)
    parser.add_argument(
        "--epochs-convmf", type=int, default=3, help="ConvMF outer epochs (text protocol)"
    )
    parser.add_argument(
        "--convmf-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a shared ConvMF setting for both libraries (genrec's names), "
        f"defaults {CONVMF_SHARED}",
    )
    parser.add_argument("--every", type=int, default=5, help="checkpoint every N epochs")
    parser.add_argument(
        "--heldout-users",
        type=int,
        default=None,
        help="strong protocol: validation = test users (default 150, 1000 for --synthetic)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per job")
    parser.add_argument(
        "--synthetic",
        default=None,
        metavar="UxI",
        help="time Mult-VAE on a synthetic U x I click matrix instead",
    )
    parser.add_argument("--synthetic-epochs", type=int, default=2)
    parser.add_argument(
        "--genrec-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a genrec model setting on top of the shared budget (e.g. bf16=true); "
        "use a separate --out, the rows are still labelled genrec",
    )
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="score the runs already under --out again instead of re-running them",
    )
    parser.add_argument(
        "--peer-python",
        default=None,
        help="an interpreter that already has the peers installed (instead of building the venv)",
    )
    parser.add_argument(
        "--skip-venv",
        action="store_true",
        help="use the peers' venv as it is (or run genrec alone without one)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(parse_pairs(args.convmf_set, "--convmf-set")) - set(CONVMF_SHARED))
    if unknown:
        parser.error(f"--convmf-set keys are {sorted(CONVMF_SHARED)}; got {unknown}")
    return args


def _data(args: argparse.Namespace) -> tuple[Interactions, str]:
    if args.synthetic:
        try:
            n_users, n_items = (int(x) for x in args.synthetic.lower().split("x"))
        except ValueError:
            raise SystemExit(
                f"--synthetic expects UxI, e.g. 20000x20000, got {args.synthetic!r}"
            ) from None
        return synthetic_clicks(n_users, n_items, ML20M_DENSITY, args.seed), args.synthetic
    from training.data.datasets import load_dataset

    return load_dataset(
        args.data, data_dir=Path(args.data_dir) if args.data_dir else None
    ), args.data


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from benchmarks.peers import venv

    peers_wanted = [lib for lib in args.libraries if lib != "genrec"]
    peer_python = None
    if peers_wanted and args.peer_python:
        peer_python = args.peer_python
    elif peers_wanted:
        peer_python = str(venv.python_of()) if args.skip_venv else str(venv.ensure_venv())
        if not Path(peer_python).exists():
            raise SystemExit(f"no peers' venv at {peer_python}; run without --skip-venv")
    tf_python = None
    if "cornac" in args.libraries and "text" in args.protocols and not args.synthetic:
        tf_python = (
            str(venv.python_of(venv.TF_VENV)) if args.skip_venv else str(venv.ensure_tf_venv())
        )
        if not Path(tf_python).exists():
            raise SystemExit(f"no ConvMF peer venv at {tf_python}; run without --skip-venv")
    libs = {
        k: v
        for k, v in libraries(peer_python, tf_python).items()
        if k.removesuffix("-tf") in args.libraries
    }
    data, name = _data(args)
    plan = [j for j in PLAN if args.models is None or j.model in args.models]
    if args.synthetic:
        args.protocols, args.epochs_ae, args.every = (
            ["strong"],
            args.synthetic_epochs,
            args.synthetic_epochs,
        )
        plan = [j for j in plan if j.model == "mult-vae"]
    heldout = args.heldout_users or (1000 if args.synthetic else 150)
    out = args.out / name.replace("/", "_")
    splits = write_splits(
        data,
        out / "splits",
        tuple(args.protocols),
        SplitSettings(seed=args.seed, heldout_users=heldout),
    )
    rows = run_plan(plan, libs, splits, args, out / "runs")
    context = {
        "command": shlex.join(
            [
                Path(sys.executable).name,
                "-m",
                "benchmarks.peers.run",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        ),
        "data": name,
        "machine": {**report.machine(args.threads), "device": args.device},
    }
    json_path, md_path = report.write(rows, out, context)
    print(md_path.read_text())
    if peer_python and rows:
        subprocess.run(
            [
                peer_python,
                "-m",
                "benchmarks.peers.plot",
                str(json_path),
                str(out / "accuracy_vs_time.png"),
            ],
            cwd=REPO,
            env=thread_env(1),
            check=False,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
