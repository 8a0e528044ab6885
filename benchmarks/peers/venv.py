"""Build the peers' own virtual environment: RecBole, Cornac and Surprise never touch genrec's.

The peers pin things genrec does not want (RecBole: ``ray<=2.6.3``, ``colorlog==4.7.2``;
Cornac 3: ``numpy>2``), so they live in ``benchmarks/peers/.venv-peers`` (gitignored)
and run as subprocesses. torch goes in first, pinned to genrec's CPU build, so that no
peer's dependency resolution drags in a multi-GB CUDA wheel; RecBole goes in last with
``--no-deps`` because its only hard pin we cannot meet (ray) serves its tuner, which the
adapters never import.

Cornac's ConvMF needs TensorFlow (about 1.5 GB installed), which only the opt-in
``text`` protocol uses, so it gets a venv of its own, ``.venv-peers-tf``, built
only when that protocol is asked for: Cornac + TensorFlow 2.20 + ``tf_keras``
(Cornac's TF1-style graph code needs the legacy Keras), no torch, no RecBole.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-peers"
REQUIREMENTS = HERE / "requirements.txt"
TORCH_SPEC = "torch==2.13.0"
RECBOLE_SPEC = "recbole==1.2.1"
MARKER = ".genrec-peers-ready"
TF_VENV = HERE / ".venv-peers-tf"
TF_REQUIREMENTS = HERE / "requirements-tf.txt"


class VenvError(RuntimeError):
    """The peers' environment could not be built; the message names the failing step."""


def python_of(venv: Path = VENV) -> Path:
    """The interpreter inside ``venv``."""
    return venv / "bin" / "python"


def _requirements(path: Path = REQUIREMENTS) -> list[str]:
    """The pip specs of step 2: every non-comment line except torch (installed first)."""
    specs = []
    for line in path.read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec and not spec.startswith("torch=="):
            specs.append(spec)
    return specs


def _pip(python: Path, *args: str) -> None:
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        raise VenvError(f"pip install {' '.join(args)} failed:\n{tail}")


def ensure_venv(venv: Path = VENV, base_python: str = sys.executable) -> Path:
    """Create and fill ``venv`` unless a finished build is there; returns its python.

    A marker file is written only after every step succeeded, so an interrupted
    build is redone instead of half-used.
    """
    python = python_of(venv)
    if (venv / MARKER).exists() and python.exists():
        return python
    if not python.exists():
        subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    _pip(python, TORCH_SPEC)
    _pip(python, TORCH_SPEC, *_requirements())
    _pip(python, "--no-deps", RECBOLE_SPEC)
    check = subprocess.run(
        [str(python), "-c", "import torch, cornac, surprise, matplotlib; print(torch.__version__)"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0 or not check.stdout.startswith("2.13.0"):
        raise VenvError(f"the peers' venv does not import cleanly:\n{check.stderr[-2000:]}")
    (venv / MARKER).write_text("ok\n")
    return python


def ensure_tf_venv(venv: Path = TF_VENV, base_python: str = sys.executable) -> Path:
    """The ConvMF peer's venv (Cornac + TensorFlow), built once like ``ensure_venv``."""
    python = python_of(venv)
    if (venv / MARKER).exists() and python.exists():
        return python
    if not python.exists():
        subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    print(f"building {venv} (Cornac + TensorFlow; a few minutes, once)", flush=True)
    _pip(python, *_requirements(TF_REQUIREMENTS))
    check = subprocess.run(
        [str(python), "-c", "import cornac, tensorflow, tf_keras; print(tensorflow.__version__)"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        raise VenvError(f"the ConvMF peer's venv does not import cleanly:\n{check.stderr[-2000:]}")
    (venv / MARKER).write_text("ok\n")
    return python


if __name__ == "__main__":  # python -m benchmarks.peers.venv [--tf]
    print(ensure_tf_venv() if "--tf" in sys.argv[1:] else ensure_venv())
