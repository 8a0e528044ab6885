"""A prediction of 10 items for one user, rated on a thread while another thread keeps the
GIL busy (as the event loop does under load): the rating thread's CPU and voluntary switches
per call, torch ops against the same arithmetic in numpy.
    .venv/bin/python docs/data/serve-2026-12-06-redis-writes/rating_torch_numpy.py  (rating_torch_numpy.txt)
"""

import threading
import time

import numpy as np
import torch

torch.set_num_threads(1)
D, N_ITEMS = 34, 1682
table = torch.randn(N_ITEMS, D)
state = torch.randn(1, D)
items_np = np.random.default_rng(0).integers(0, N_ITEMS, 10).astype(np.int64)


def torch_rate():
    with torch.inference_mode():
        s = torch.cat([state.to("cpu")])
        it = torch.as_tensor(np.concatenate([items_np]), device="cpu")
        w = table[it.to(table.device)]
        out = (s.to(w.device) @ w.T).clamp(1.0, 5.0).float().cpu().numpy()
    return out


tnp = table.numpy()


def numpy_rate():
    s = state.numpy()
    return np.clip(s @ tnp[items_np].T, 1.0, 5.0).astype(np.float32)


def switches():
    tid = threading.get_native_id()
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])


stop = False


def busy():  # pure Python with a short release now and then, like a loop that polls I/O
    while not stop:
        x = 0
        for i in range(2000):
            x += i
        time.sleep(0)


def run(fn, n, res):
    fn()
    c0, s0, w0 = time.thread_time(), switches(), time.perf_counter()
    for _ in range(n):
        fn()
    res.append(
        (
            (time.thread_time() - c0) / n * 1e6,
            (switches() - s0) / n,
            (time.perf_counter() - w0) / n * 1e6,
        )
    )


for contended in (False, True):
    stop = False
    b = threading.Thread(target=busy) if contended else None
    if b:
        b.start()
    for name, fn in (("torch", torch_rate), ("numpy", numpy_rate)) * 2:
        res = []
        t = threading.Thread(target=run, args=(fn, 2000, res))
        t.start()
        t.join()
        cpu, sw, wall = res[0]
        print(
            f"{'contended' if contended else 'alone':9s} {name:5s} cpu {cpu:7.1f} us  switches {sw:5.2f}  wall {wall:8.1f} us"
        )
    stop = True
    if b:
        b.join()
assert np.allclose(torch_rate(), numpy_rate(), atol=1e-5)
