"""A server's start-up at 1,000,000 items, step by step, with the peak of its *anonymous*
memory (``RssAnon`` of /proc/self/status, sampled every 5 ms by a thread) beside the
peak RSS the kernel reports (``ru_maxrss``).

Why both: ``ru_maxrss`` also counts the pages of mapped files (the tensors file while
safetensors copies out of it, the FAISS indexes), which are clean page cache the kernel
can drop under pressure; what a container's memory limit must hold is the anonymous
part. The steps are those of a server's start-up (``ModelHolder`` load, then the
``AnnLoader`` listener: both indexes opened, the boosts' covariances computed).

    PYTHONPATH=<checkout> .venv/bin/python anon_peak.py STORE
"""

from __future__ import annotations

import resource
import sys
import threading
import time

import torch

PEAK = {"anon": 0.0}


def anon_gib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 2**20
    return 0.0


def sample(stop: threading.Event) -> None:
    while not stop.is_set():
        PEAK["anon"] = max(PEAK["anon"], anon_gib())
        time.sleep(0.005)


def report(step: str) -> None:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"{step}: anonymous now {anon_gib():.2f} GiB, peak {PEAK['anon']:.2f} GiB; "
        f"max RSS {maxrss:.2f} GiB"
    )


def main() -> None:
    from app.core.config import Settings
    from app.serving.loaded import build_loaded_model
    from app.serving.retrieval import AnnLoader
    from models_store import ModelStore

    stop = threading.Event()
    threading.Thread(target=sample, args=(stop,), daemon=True).start()
    store = ModelStore(sys.argv[1])
    report("imports")
    version = store.load("mult-vae", store.resolve("mult-vae"))
    report("store.load")
    model = build_loaded_model(version, torch.device("cpu"))
    del version
    report("build_loaded_model")
    settings = Settings(_env_file=None, redis_url=None, ann="on")  # type: ignore[call-arg]
    opened = AnnLoader(settings)(model)
    assert opened.ann is not None and opened.similar_ann is not None
    time.sleep(0.05)
    report("AnnLoader (both indexes, both covariances)")
    stop.set()


if __name__ == "__main__":
    main()
