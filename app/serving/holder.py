"""``ModelHolder``: which version of each model this process serves, and hot swap.

Requests call ``get(name)`` and keep the ``LoadedModel`` they receive for the
whole request. A background thread polls ``store.alias_state`` every
``reload_interval_s``; when ``production`` moves, it loads and verifies the new
version off the request path and then replaces one dict entry. In-flight
requests finish on the object they hold; new ones see the new version.

A version that fails to load (corrupt, unknown format, scorer error) is
refused with one log line, recorded for ``/readyz``, and not retried until the
alias moves again; the previously loaded version keeps serving.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from app.core.heap import freeze_long_lived
from app.core.metrics import Metrics
from app.serving.loaded import LoadedModel, ModelLoadError, build_loaded_model
from models_store import ModelStore, StoreError
from training.device import resolve_device as resolve_device  # the one resolver, re-exported
from training.models import REGISTRY

log = logging.getLogger(__name__)


class UnknownModel(LookupError):
    """No such model in the store (or no code to serve it)."""

    def __init__(self, name: str, available: list[str]) -> None:
        super().__init__(
            f"unknown model '{name}'; available: {', '.join(available) or 'none (store is empty)'}"
        )
        self.name = name
        self.available = available


class ModelUnavailable(RuntimeError):
    """The model exists but cannot be served now (no production version, or it fails to load)."""


@dataclass(frozen=True)
class LoadFailure:
    version: str
    error: str


class ModelHolder:
    """Loaded versions by model name; thread-safe; owns the reload thread."""

    def __init__(
        self,
        store: ModelStore,
        device: torch.device,
        metrics: Metrics,
        default_model: str,
        reload_interval_s: float = 2.0,
    ) -> None:
        self.store = store
        self.device = device
        self.metrics = metrics
        self.default_model = default_model
        self.reload_interval_s = reload_interval_s
        self._models: dict[str, LoadedModel] = {}
        self._failures: dict[str, LoadFailure] = {}
        self._lock = threading.Lock()  # guards the dicts above
        self._load_locks: dict[str, threading.Lock] = {}  # one loader per model at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Applied to every version before it is installed: ``app.catalog`` appends
        # catalog items scored from their text (identity when no catalog is attached).
        self.on_load: Callable[[LoadedModel], LoadedModel] = lambda model: model

    # -- request path -----------------------------------------------------------------

    def get(self, name: str | None = None) -> LoadedModel:
        """The version of ``name`` (default model when None) to serve this request."""
        name = name or self.default_model
        model = self._models.get(name)
        if model is not None:
            return model
        return self._load_first(name)

    def peek(self, name: str) -> LoadedModel | None:
        """The loaded version of ``name`` without triggering a load (None if not loaded)."""
        return self._models.get(name)

    def available(self) -> list[str]:
        """Models in the store that this code can serve."""
        try:
            return [m for m in self.store.list_models() if m in REGISTRY]
        except StoreError as exc:
            log.warning("cannot list the model store: %s", exc)
            return []

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Load the default model if it has a production version; start polling."""
        try:
            self.get(self.default_model)
        except (UnknownModel, ModelUnavailable) as exc:
            log.warning("default model not loaded at startup: %s", exc)
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll_loop, name="model-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.reload_interval_s))
            self._thread = None

    def status(self) -> dict[str, dict[str, Any]]:
        """Per model: the version served and the last refused version, for ``/readyz``."""
        with self._lock:
            names = set(self._models) | set(self._failures) | {self.default_model}
            return {
                name: {
                    "loaded": name in self._models,
                    "version": self._models[name].version if name in self._models else None,
                    "device": str(self._models[name].device) if name in self._models else None,
                    "error": self._failures[name].error if name in self._failures else None,
                }
                for name in sorted(names)
            }

    def is_loaded(self, name: str) -> bool:
        return name in self._models

    def loaded(self) -> list[LoadedModel]:
        """The versions served right now (one per loaded model name)."""
        with self._lock:
            return list(self._models.values())

    def replace_if_current(self, current: LoadedModel, new: LoadedModel) -> bool:
        """Swap ``new`` in for ``current`` unless another version replaced it meanwhile.

        Copy-on-write updates of a loaded model (``app.catalog``) go through
        here, so they never overwrite a version hot-swapped in while they built.
        """
        with self._lock:
            if self._models.get(current.name) is not current:
                return False
            self._models[current.name] = new
            return True

    # -- loading ----------------------------------------------------------------------

    def _load_first(self, name: str) -> LoadedModel:
        if name not in REGISTRY:
            raise UnknownModel(name, self.available())
        with self._lock:
            load_lock = self._load_locks.setdefault(name, threading.Lock())
        with load_lock:
            model = self._models.get(name)
            if model is not None:  # another request loaded it while we waited
                return model
            try:
                version = self.store.alias_state(name)
            except StoreError as exc:
                raise ModelUnavailable(f"model '{name}': cannot read its alias: {exc}") from exc
            if version is None:
                if name not in self.available():
                    raise UnknownModel(name, self.available())
                raise ModelUnavailable(
                    f"model '{name}' has no production version; promote one "
                    f"(genrec models promote {name} VERSION)"
                )
            failed = self._failures.get(name)
            if failed is not None and failed.version == version:
                # Do not re-read a refused version on every request; wait for the alias to move.
                raise ModelUnavailable(failed.error)
            return self._load_version(name, version)

    def _load_version(self, name: str, version: str) -> LoadedModel:
        """Load, verify and install ``version``; ``ModelUnavailable`` if it is refused."""
        try:
            model = self.on_load(build_loaded_model(self.store.load(name, version), self.device))
        except (StoreError, ModelLoadError) as exc:
            self._record_failure(name, version, exc)
            previous = self._models.get(name)
            suffix = f"; still serving version {previous.version}" if previous else ""
            raise ModelUnavailable(self._failures[name].error + suffix) from exc
        with self._lock:
            previous = self._models.get(name)
            self._models[name] = model  # the swap: one reference replaced
            self._failures.pop(name, None)
        self.metrics.set_loaded_version(name, version, previous.version if previous else None)
        freeze_long_lived()  # the version lives until the next swap: keep GC scans off it
        log.info(
            "serving %s version %s on %s%s",
            name,
            version,
            model.device,
            f" (was {previous.version})" if previous else "",
        )
        return model

    def _record_failure(self, name: str, version: str, exc: Exception) -> None:
        self.metrics.model_load_errors.labels(model=name).inc()
        with self._lock:
            self._failures[name] = LoadFailure(
                version=version, error=f"{name} version {version} refused: {exc}"
            )
        log.error("refused %s version %s: %s", name, version, exc)

    # -- hot swap ---------------------------------------------------------------------

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.reload_interval_s):
            self.poll_once()

    def poll_once(self) -> None:
        """One reload check over the loaded models and the default model."""
        with self._lock:
            names = set(self._models) | {self.default_model}
        for name in sorted(names):
            try:
                self._check(name)
            except Exception:  # the reload thread must survive anything
                log.exception("reload check of model %s failed", name)

    def _check(self, name: str) -> None:
        if name not in REGISTRY:
            return
        try:
            target = self.store.alias_state(name)
        except StoreError as exc:
            log.warning("cannot read the production alias of %s: %s", name, exc)
            return
        if target is None:
            return
        current = self._models.get(name)
        failed = self._failures.get(name)
        if (current is not None and current.version == target) or (
            failed is not None and failed.version == target
        ):
            return
        with self._lock:
            load_lock = self._load_locks.setdefault(name, threading.Lock())
        # A refusal is recorded and logged; the old version keeps serving.
        with load_lock, contextlib.suppress(ModelUnavailable):
            self._load_version(name, target)
