"""A/B simulation: does the experiment machinery name the better model, and does it
stay quiet when there is no difference?

What it does (docs/experiments.md, "Simulation"):

1. Splits MovieLens-100K per user: a random 20% of each user's items are held out
   (``--seed``); EASE and popularity are trained on the rest into a fresh store. Their
   offline NDCG@10 is the manifest's (each version's own validation slice).
2. Starts ``genrec serve`` as a subprocess (SQLite file by default; ``--database-url``
   / ``--redis-url`` for Postgres and Redis), creates the experiment
   ``popularity`` (control) vs ``ease``, weights 1:1, through the admin API.
3. Replays the users over HTTP in a random order, one list of ``--k`` items each; a
   simulated user clicks every served item that is among their held-out items
   (``POST /v1/interactions`` with ``type=click`` and the ``recommendation_id``),
   and buys (``type=purchase``, a conversion) each clicked item they rated 5.
   The results are read after every ``--peek-every`` requests (peeking).
4. Checks: EASE better than popularity with significance; online CTR order equals
   offline NDCG order.
5. A/A over HTTP: an experiment with EASE in both variants, the users replayed
   again the same way (results read after every ``--peek-every`` requests);
   reported (one run may declare a difference, with probability at most 5%).
   Its per-user click and conversion outcomes then feed ``--aa-runs`` A/A
   experiments of that model against itself, replayed in-process through the same
   results code (``app.experiments.results``) with the same assignment hash under a
   new experiment name each, read after every ``--peek-every`` users; a run declares
   a difference in a rate (CTR, conversion rate) if any read of its test is
   significant. Also run: ``--aa-extra`` more runs for a tighter estimate of the
   rates, and the same reads with a fixed-horizon z-test, to show what peeking does
   to a test that is not sequential.

Usage::

    python benchmarks/ab_simulation.py                       # embedded server (SQLite)
    python benchmarks/ab_simulation.py --database-url postgresql+psycopg://postgres@127.0.0.1/genrec_ab \\
        --redis-url redis://127.0.0.1:6379/0 --json ab.json

Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

TOKEN = "ab-simulation"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONTROL, TREATMENT = "popularity", "ease"


def log(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------- data


#: A held-out item rated this (MovieLens: 1 to 5) is bought when clicked: a conversion.
BOUGHT_RATING = 5.0


def split_and_train(
    store_dir: Path, data_dir: Path | None, seed: int, holdout: float
) -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, float]]:
    """Held-out items per user, those of them the user rated ``BOUGHT_RATING``, and each
    model's offline NDCG@10 (manifest)."""
    import torch

    from models_store import ModelStore
    from training.data.datasets import load_dataset
    from training.pipeline import train_and_save

    torch.set_num_threads(1)
    data = load_dataset("ml-100k", data_dir=data_dir, allow_download=False)
    rng = np.random.default_rng(seed)
    held = np.zeros(len(data), dtype=bool)
    for user in np.unique(data.users):
        rows = np.flatnonzero(data.users == user)
        n = max(1, round(holdout * rows.size))
        held[rng.choice(rows, size=n, replace=False)] = True
    heldout: dict[str, set[str]] = {}
    bought: dict[str, set[str]] = {}
    for u, i, r in zip(data.users[held], data.items[held], data.ratings[held], strict=True):
        user, item = data.user_ids.external(int(u)), data.item_ids.external(int(i))
        heldout.setdefault(user, set()).add(item)
        if r >= BOUGHT_RATING:
            bought.setdefault(user, set()).add(item)
    train = data.subset(~held)
    store = ModelStore(store_dir)
    ndcg = {}
    for name in (CONTROL, TREATMENT):
        t0 = time.perf_counter()
        manifest = train_and_save(
            store, name, train, {"seed": seed}, source="ml-100k-ab", promote=True
        )
        ndcg[name] = float(manifest.metrics["ndcg@10"])
        log(
            f"# trained {name} in {time.perf_counter() - t0:.1f} s: offline ndcg@10 {ndcg[name]:.4f}"
        )
    return heldout, bought, ndcg


# --------------------------------------------------------------------------- server


def start_server(args: argparse.Namespace, store: Path, workdir: Path) -> tuple[Any, str]:
    import httpx

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from serve_bench import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENREC_")}
    env.update(
        GENREC_STORE_DIR=str(store),
        GENREC_DATABASE_URL=args.database_url or f"sqlite:///{workdir}/genrec.db",
        GENREC_ADMIN_TOKEN=TOKEN,
        GENREC_DEFAULT_MODEL=CONTROL,
        GENREC_ACCESS_LOG="false",
        GENREC_IMPRESSION_FLUSH_S="0.1",
        OMP_NUM_THREADS="1",
    )
    if args.redis_url:
        env["GENREC_REDIS_URL"] = args.redis_url
        env["GENREC_CACHE_NAMESPACE"] = f"ab-{port}"
    genrec = str(Path(sys.executable).parent / "genrec")
    out = (workdir / "server.log").open("wb")
    proc = subprocess.Popen(
        [genrec, "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"genrec serve exited; see {workdir / 'server.log'}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("genrec serve did not become ready in 120 s")


# --------------------------------------------------------------------------- A/B over HTTP


#: Per user: (clicks, conversions, items served).
Outcomes = dict[str, tuple[int, int, int]]


def replay(
    client: Any,
    users: list[str],
    heldout: dict[str, set[str]],
    bought: dict[str, set[str]],
    k: int,
    name: str,
    peek_every: int,
) -> tuple[list[dict[str, Any]], Outcomes]:
    """One list per user (clicks and purchases posted); the results read every
    ``peek_every`` requests.

    Returns the reads, and per user (clicks, conversions, items served)."""
    reads: list[dict[str, Any]] = []
    outcomes: Outcomes = {}
    params: dict[str, Any] = {"k": k}
    for n, user in enumerate(users, start=1):
        answer = (
            client.get(f"/v1/users/{user}/recommendations", params=params).raise_for_status().json()
        )
        shown = [i["item_id"] for i in answer["items"]]
        clicked = [i for i in shown if i in heldout.get(user, set())]
        purchased = [i for i in clicked if i in bought.get(user, set())]
        outcomes[user] = (len(clicked), len(purchased), len(shown))
        if clicked:
            events = [
                {"user_id": user, "item_id": i, "type": kind,
                 "recommendation_id": answer["recommendation_id"]}
                for kind, items in (("click", clicked), ("purchase", purchased))
                for i in items
            ]  # fmt: skip
            client.post("/v1/interactions", json={"interactions": events}).raise_for_status()
        if n % peek_every == 0 or n == len(users):
            result = (
                client.get(f"/admin/experiments/{name}", headers=AUTH).raise_for_status().json()
            )
            treatment = next(v for v in result["variants"] if v.get("vs_control"))
            versus = treatment["vs_control"]
            reads.append({"requests": n, **versus})
            diff = "none" if versus["ctr_diff"] is None else f"{versus['ctr_diff']:+.4f}"
            log(f"  after {n:4d} requests: ctr_diff {diff} p {versus['p_value']:.2e}")
    return reads, outcomes


# --------------------------------------------------------------------------- A/A in-process


def _fixed_horizon_significant(a: Any, b: Any) -> bool:
    """The naive read: a two-sided z-test at 5% on the same delta-method variance."""
    from scipy import stats as sps

    if a.empty or b.empty or a.variance + b.variance <= 0:
        return False
    z = (b.value - a.value) / math.sqrt(a.variance + b.variance)
    return 2 * float(sps.norm.sf(abs(z))) < 0.05


def aa_runs(
    outcomes: Outcomes, runs: int, peek_every: int, mixing_sd: float, seed: int
) -> dict[str, Any]:
    """A/A experiments replayed through ``app.experiments.results`` (see the module doc).

    Counts the runs in which each test (CTR, conversion rate; mSPRT and the naive
    fixed-horizon z-test) was significant at some read, and those in which either
    mSPRT was (an operator who acts on whichever rate moves)."""
    from app.experiments import results
    from app.experiments.assignment import choose
    from app.experiments.definitions import ExperimentDef, Variant

    variants = (Variant("a", TREATMENT, None, 1.0), Variant("b", TREATMENT, None, 1.0))
    users = sorted(outcomes)
    rng = np.random.default_rng(seed)
    estimates = {"ctr": results.ctr_estimate, "conversion": results.conversion_estimate}
    declared = dict.fromkeys(("ctr", "conversion", "either"), 0)
    naive_declared = dict.fromkeys(estimates, 0)
    final_p: dict[str, list[float]] = {"ctr": [], "conversion": []}
    for run in range(runs):
        name = f"aa-{seed}-{run}"
        exp = ExperimentDef(
            name, "running", "a", variants, 30.0, mixing_sd, datetime.now(UTC), None
        )
        totals = {"a": results.VariantTotals(), "b": results.VariantTotals()}
        hit = dict.fromkeys(declared, False)
        naive_hit = dict.fromkeys(estimates, False)
        order = rng.permutation(len(users))
        for n, index in enumerate(order, start=1):
            user = users[index]
            clicks, conversions, served = outcomes[user]
            side = totals[choose(name, variants, user).name].user(("user", user))
            side.impressions += 1
            side.served += served
            side.clicks += clicks
            side.conversions += conversions
            if n % peek_every == 0 or n == len(users):
                versus = results.summarize(exp, totals)["variants"][1][1]["vs_control"]
                read = {"ctr": versus, "conversion": versus["conversion"]}
                for rate, estimate in estimates.items():
                    hit[rate] |= read[rate]["significant"]
                    naive_hit[rate] |= _fixed_horizon_significant(
                        estimate(totals["a"]), estimate(totals["b"])
                    )
                hit["either"] |= versus["significant"] or versus["conversion"]["significant"]
        for rate in final_p:
            final_p[rate].append(read[rate]["p_value"])
        for key in declared:
            declared[key] += hit[key]
        for rate in naive_declared:
            naive_declared[rate] += naive_hit[rate]
    return {
        "runs": runs,
        "declared_msprt": declared["ctr"],
        "declared_fixed_horizon_z": naive_declared["ctr"],
        "median_final_p": float(np.median(final_p["ctr"])) if runs else None,
        "declared_msprt_conversion": declared["conversion"],
        "declared_fixed_horizon_z_conversion": naive_declared["conversion"],
        "median_final_p_conversion": float(np.median(final_p["conversion"])) if runs else None,
        "declared_msprt_either": declared["either"],
    }


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("GENREC_DATA_DIR"))
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--users", type=int, default=0, help="users replayed (0 = all 943)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--peek-every", type=int, default=100)
    parser.add_argument("--aa-runs", type=int, default=20)
    parser.add_argument("--aa-extra", type=int, default=200)
    parser.add_argument("--mixing-sd", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    if args.data_dir is None:
        args.data_dir = Path(__file__).resolve().parents[1].parent / "shared" / "data"

    import httpx

    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="ab-sim-"))
    heldout, bought, ndcg = split_and_train(
        workdir / "store", args.data_dir, args.seed, args.holdout
    )
    users = sorted(heldout)
    rng = np.random.default_rng(args.seed)
    users = [users[i] for i in rng.permutation(len(users))]
    if args.users:
        users = users[: args.users]
    proc, url = start_server(args, workdir / "store", workdir)
    figures: dict[str, Any] = {"offline_ndcg@10": ndcg, "users": len(users)}
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            name = f"ab-{int(time.time())}"
            body = {
                "name": name,
                "variants": [
                    {"name": CONTROL, "model": CONTROL, "weight": 1},
                    {"name": TREATMENT, "model": TREATMENT, "weight": 1},
                ],
                "mixing_sd": args.mixing_sd,
            }
            client.post("/admin/experiments", json=body, headers=AUTH).raise_for_status()
            log(
                f"# experiment {name}: {CONTROL} (control) vs {TREATMENT}, {len(users)} users over HTTP"
            )
            t0 = time.perf_counter()
            reads, _ = replay(client, users, heldout, bought, args.k, name, args.peek_every)
            http_s = time.perf_counter() - t0
            result = (
                client.get(f"/admin/experiments/{name}", headers=AUTH).raise_for_status().json()
            )
            client.post(f"/admin/experiments/{name}/stop", headers=AUTH).raise_for_status()
            aa_name = f"aa-{name}"
            body = {
                "name": aa_name,
                "variants": [
                    {"name": "a", "model": TREATMENT, "weight": 1},
                    {"name": "b", "model": TREATMENT, "weight": 1},
                ],
                "mixing_sd": args.mixing_sd,
            }
            client.post("/admin/experiments", json=body, headers=AUTH).raise_for_status()
            log(f"# A/A over HTTP: experiment {aa_name}, {TREATMENT} in both variants")
            aa_reads, outcomes = replay(
                client, users, heldout, bought, args.k, aa_name, args.peek_every
            )
            aa_result = (
                client.get(f"/admin/experiments/{aa_name}", headers=AUTH).raise_for_status().json()
            )
            client.post(f"/admin/experiments/{aa_name}/stop", headers=AUTH).raise_for_status()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    by_name = {v["name"]: v for v in result["variants"]}
    versus = by_name[TREATMENT]["vs_control"]
    online = {n: by_name[n]["ctr"] for n in (CONTROL, TREATMENT)}
    offline_order = sorted(ndcg, key=ndcg.get, reverse=True)  # type: ignore[arg-type]
    online_order = sorted(online, key=online.get, reverse=True)  # type: ignore[arg-type]
    figures.update(
        ab={
            "http_seconds": round(http_s, 1),
            "variants": {
                n: {
                    key: by_name[n][key]
                    for key in (
                        "users",
                        "impressions",
                        "clicks",
                        "conversions",
                        "ctr",
                        "conversion_rate",
                        "list_ctr",
                        "mrr",
                        "latency_ms",
                    )
                }
                for n in (CONTROL, TREATMENT)
            },
            "vs_control": versus,
            "srm": result["srm"],
            "first_significant_read": next(
                (r["requests"] for r in reads if r["significant"]), None
            ),
            "first_significant_read_conversion": next(
                (r["requests"] for r in reads if r["conversion"]["significant"]), None
            ),
            "online_order": online_order,
            "offline_order": offline_order,
        }
    )
    figures["aa_http"] = {
        "declared": any(r["significant"] for r in aa_reads),
        "declared_conversion": any(r["conversion"]["significant"] for r in aa_reads),
        "reads": len(aa_reads),
        "min_p": min(r["p_value"] for r in aa_reads),
        "min_p_conversion": min(r["conversion"]["p_value"] for r in aa_reads),
        "vs_control": next(v for v in aa_result["variants"] if v.get("vs_control"))["vs_control"],
        "srm": aa_result["srm"],
    }
    log(
        f"# A/A: {args.aa_runs} runs (+{args.aa_extra}) in-process, peeking every {args.peek_every} users"
    )
    figures["aa"] = aa_runs(outcomes, args.aa_runs, args.peek_every, args.mixing_sd, args.seed)
    figures["aa_extra"] = aa_runs(
        outcomes, args.aa_extra, args.peek_every, args.mixing_sd, args.seed + 1
    )
    figures["seconds"] = round(time.perf_counter() - started, 1)
    checks = {
        "ease_better_and_significant": versus["significant"] and versus["ctr_diff"] > 0,
        "online_order_matches_offline": online_order == offline_order,
        "aa_at_most_2_of_20": figures["aa"]["declared_msprt"] <= max(2, args.aa_runs // 10),
        "aa_conversion_at_most_2_of_20": figures["aa"]["declared_msprt_conversion"]
        <= max(2, args.aa_runs // 10),
        "srm_ok": result["srm"]["ok"],
    }
    figures["checks"] = checks
    print(json.dumps(figures, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
