"""``ModelHolder``: which version of each model this process serves, and hot swap.

Requests call ``get(name)`` and keep the ``LoadedModel`` they receive for the
whole request. A background thread polls ``store.alias_state`` every
``reload_interval_s``; when ``production`` moves, it loads and verifies the new
version off the request path and then replaces one dict entry. In-flight
requests finish on the object they hold; new ones see the new version.

A version that fails to load (corrupt, unknown format, scorer error) is
refused with one log line, recorded for ``/readyz``, and not re-read on every
poll; the previously loaded version keeps serving. It is tried again when the
alias moves, when it is promoted again (the alias's ``updated_at`` changes) or
when its files change (a repaired file), so no server stays on the old version
after a fix that a restarted server would load. A version being served is loaded
again when its files change too: ``genrec models index`` adds index files to a
published version, and servers must not need a restart to use them.

Besides production, the holder serves the versions an experiment's variants pin
(``get_version``). One version is in memory once, whoever uses it: a pin of the
production version is production's object, a promotion of a pinned version
installs the pinned object, and a version production moves away from stays while
a pin uses it; it is dropped when neither does. Pinned versions follow their
files through the same poll as production ones (``_files_changed``).

Without an explicit ``GENREC_DEFAULT_MODEL`` the default model is chosen from
the store on every poll (``app.serving.default_model``).
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
from app.core.poller import Poller
from app.serving.default_model import PREFERRED_DEFAULT, choose_default_model
from app.serving.loaded import LoadedModel, ModelLoadError, build_loaded_model
from models_store import ModelStore, StoreError
from training.device import resolve_device as resolve_device  # the one resolver, re-exported
from training.models import REGISTRY

log = logging.getLogger(__name__)


class UnknownModel(LookupError):
    """No such model in the store (or no code to serve it)."""

    def __init__(self, name: str, available: list[str], default_origin: str | None = None) -> None:
        listed = ", ".join(available) or "none (store is empty)"
        if default_origin is None:
            message = f"unknown model '{name}'; available: {listed}"
        else:  # the request named no model: say that the configured default is missing
            message = (
                f"the default model {default_origin} is not in the store; available: {listed}; "
                "name one with the model parameter"
            )
        super().__init__(message)
        self.name = name
        self.available = available


class ModelUnavailable(RuntimeError):
    """The model exists but cannot be served now (no production version, or it fails to load)."""


#: Called with each newly loaded version; returns the version to install.
LoadListener = Callable[[LoadedModel], LoadedModel]
#: Asked, as a version is installed, whether what a listener returned is still what it
#: would return now (see ``ModelHolder.add_load_listener``).
StillCurrent = Callable[[LoadedModel], bool]


@dataclass(frozen=True)
class LoadFailure:
    version: str
    error: str
    # The alias's updated_at and the version's file fingerprint when it was refused:
    # a refusal stands only while both are unchanged (no re-promotion, no repair).
    seen: tuple[str, str] = ("", "")


class ModelHolder:
    """Loaded versions by model name; thread-safe; owns the reload thread."""

    def __init__(
        self,
        store: ModelStore,
        device: torch.device,
        metrics: Metrics,
        default_model: str | None,
        reload_interval_s: float = 2.0,
    ) -> None:
        """``default_model`` None = choose it from the store (see ``choose_default_model``)."""
        self.store = store
        self.device = device
        self.metrics = metrics
        # An explicit default is strict; an automatic one follows the store on every poll.
        self.default_explicit = default_model is not None
        self.default_model = default_model or PREFERRED_DEFAULT
        self.reload_interval_s = reload_interval_s
        self._models: dict[str, LoadedModel] = {}
        self._failures: dict[str, LoadFailure] = {}
        # The file fingerprint of each version in memory when it was read, by (name,
        # version): production's and the pinned ones (see _files_changed).
        self._fingerprints: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()  # guards the dicts above
        self._load_locks: dict[str, threading.Lock] = {}  # one loader per model at a time
        self._poller = Poller("model-reload", self.poll_once, reload_interval_s)
        # (listener, its still-current check or None), in order; see add_load_listener
        self._load_listeners: list[tuple[LoadListener, StillCurrent | None]] = []
        # The versions an experiment's variants name (``get_version``), kept until
        # ``release_pinned``; swapped copy-on-write (``replace_pinned_if_current``). A pin
        # of the version production serves is production's very object: one version, one
        # object, whoever uses it.
        self._pinned: dict[tuple[str, str], LoadedModel] = {}
        # The versions the running experiment pins (``release_pinned``'s ``keep``): only
        # these are pinned. None until it is first called (no experiment known yet).
        self._pinnable: set[tuple[str, str]] | None = None
        # Refused pins: a first load (``get_version`` raises, not re-read per request) or
        # a reload of a served pin (it keeps serving), with the fingerprint it was refused
        # at: the poll tries a served pin again when its files change.
        self._pinned_refused: dict[tuple[str, str], LoadFailure] = {}
        #: Moves whenever what is served changes (a swap, a pin, a release): the
        #: micro-batchers retire the ones of objects no longer served (``serves``).
        self.generation = 0

    # -- request path -----------------------------------------------------------------

    def get(self, name: str | None = None) -> LoadedModel:
        """The version of ``name`` (default model when None) to serve this request."""
        model = self._models.get(name or self.default_model)
        if model is not None:
            return model
        if name is not None:
            return self._load_first(name)
        name = self.default_model
        try:
            return self._load_first(name)
        except UnknownModel as exc:  # say it is the default, and where it comes from
            raise UnknownModel(name, exc.available, self._default_origin()) from exc
        except ModelUnavailable as exc:
            raise ModelUnavailable(f"default model {self._default_origin()}: {exc}") from exc

    def get_version(self, name: str, version: str) -> LoadedModel:
        """A named version of ``name`` (an experiment variant that names a version),
        pinned until ``release_pinned``: production's object when production serves that
        version, else the pinned one, read once.

        Pinned versions are not hot-swapped to another version, but are read again when
        their files change (the poll, as for production), and get copy-on-write updates
        (the catalog's items) like production ones (``replace_pinned_if_current``); a
        refused one raises ``ModelUnavailable``.
        """
        key = (name, version)
        pinned = self._pinned.get(key)
        if pinned is not None:
            return pinned
        current = self._models.get(name)
        if current is not None and current.version == version and self._share(current):
            return current
        pinnable = self._pinnable
        if pinnable is not None and key not in pinnable:
            # A request assigned just before the experiment ended: reading the version
            # for it would keep it in memory until the next experiment change.
            raise ModelUnavailable(
                f"{name} version {version}: no running experiment pins it (any more)"
            )
        refused = self._pinned_refused.get(key)
        if refused is not None and refused.seen[1] == self._fingerprint(key):
            raise ModelUnavailable(refused.error)  # the files as they were refused
        if name not in REGISTRY:
            raise UnknownModel(name, self.available())
        with self._version_lock(key):
            pinned = self._pinned.get(key)
            if pinned is not None:
                return pinned
            current = self._models.get(name)  # production loaded it meanwhile: share it
            if current is not None and current.version == version and self._share(current):
                return current
            seen = ("", self._fingerprint(key))  # before the read: a repair after is news
            try:
                model = self._read(name, version, self._pin)
            except (StoreError, ModelLoadError) as exc:
                error = f"{name} version {version} refused: {exc}"
                with self._lock:
                    self._pinned_refused[key] = LoadFailure(version, error, seen)
                log.error("%s", error)
                raise ModelUnavailable(error) from exc
            log.info("serving %s version %s (pinned) on %s", name, version, model.device)
            return model

    def _fingerprint(self, key: tuple[str, str]) -> str:
        """The version's file fingerprint, "" when the store cannot say (a refused pin
        stands until it can, or its files change). Why a refusal records it: a pin refused
        at its first read (a file damaged in a copy) stayed refused until the next
        experiment change, even once its files were put right."""
        try:
            return self.store.version_fingerprint(*key)
        except (StoreError, OSError):
            return ""

    def _share(self, production: LoadedModel) -> bool:
        """Pin ``production`` (the version a variant names) unless a swap replaced it
        meanwhile: the pin keeps that object when production moves on, rather than read
        the version again on the variant's next request."""
        key = (production.name, production.version)
        with self._lock:
            if self._models.get(production.name) is not production:
                return False
            if self._pinnable is None or key in self._pinnable:  # else served, not pinned
                self._pinned[key] = production
                self.generation += 1
            return True

    def _pin(self, model: LoadedModel, fingerprint: str, *, reload: bool = False) -> bool:
        """Install ``model`` as a pinned version (``get_version``, or with ``reload`` the
        poll's read of one whose files changed: installed only while it is still pinned,
        so a release meanwhile stands), unless a listener's result went stale meanwhile
        (False: ``_read`` runs the listeners again).

        Copy-on-write updates reach pinned versions (``pinned``,
        ``replace_pinned_if_current``) as they reach production versions: a change read
        between the listeners and this install would miss the version about to be
        pinned, exactly as for a production install (``add_load_listener``). Called
        under the version's load lock, which production loads take too: production
        cannot install this version meanwhile (``_load_version``).
        """
        with self._lock:
            if not self._still_current(model):
                return False
            key = (model.name, model.version)
            if reload and key not in self._pinned:
                return True  # released while it was read: nobody is served it
            if self._pinnable is not None and key not in self._pinnable:
                return True  # released while it was read: served to this request only
            self._pinned[key] = model
            self.generation += 1
            # The files as read, under the store's lock (as ``_install`` keeps them).
            self._fingerprints[key] = fingerprint
            self._pinned_refused.pop(key, None)
        return True

    def release_pinned(self, keep: set[tuple[str, str]]) -> None:
        """Drop pinned versions not in ``keep`` (experiments that ended; a version
        production serves stays as production), and forget refusals (a new experiment
        tries again). From now on only versions in ``keep`` are pinned: ``get_version``
        refuses the others, which only a request assigned before the change asks for."""
        with self._lock:
            self._pinnable = set(keep)
            for key in [k for k in self._pinned if k not in keep]:
                del self._pinned[key]
                self._forget_if_unused(key)
            self._pinned_refused.clear()
            self.generation += 1

    def _forget_if_unused(self, key: tuple[str, str]) -> None:
        """Drop what is kept about version ``key`` once neither production nor a pin
        uses it (the object itself goes with its last reference). Under ``self._lock``."""
        production = self._models.get(key[0])
        if key not in self._pinned and (production is None or production.version != key[1]):
            self._fingerprints.pop(key, None)

    def default_problem(self) -> str | None:
        """Why the default model is not being served (for ``/readyz``); None when it is."""
        name = self.default_model
        if name in self._models:
            return None
        failed = self._failures.get(name)
        if failed is not None:
            return f"default model {self._default_origin()}: {failed.error}"
        available = self.available()
        if not self.default_explicit and choose_default_model(self.store) is None:
            return (
                "no model in the store has a production version (models: "
                f"{', '.join(available) or 'none'}); promote one (genrec models promote NAME "
                "VERSION) or set GENREC_DEFAULT_MODEL"
            )
        if name not in available:
            return (
                f"default model {self._default_origin()} is not in the store "
                f"(models: {', '.join(available) or 'none'})"
            )
        try:
            production = self.store.alias_state(name)
        except (StoreError, ValueError) as exc:  # the alias unreadable: say that, not a guess
            return f"default model {self._default_origin()}: production alias unreadable ({exc})"
        if production is None:
            return (
                f"default model {self._default_origin()} has no production version; promote "
                f"one (genrec models promote {name} VERSION)"
            )
        return f"default model {self._default_origin()} is not loaded yet (version {production})"

    def _default_origin(self) -> str:
        if self.default_explicit:
            return f"'{self.default_model}' (GENREC_DEFAULT_MODEL)"
        return f"'{self.default_model}' (automatic: GENREC_DEFAULT_MODEL is not set)"

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
        self.resolve_default()
        try:
            self.get(self.default_model)
        except (UnknownModel, ModelUnavailable) as exc:
            log.warning("default model not loaded at startup: %s", exc)
        self._poller.start()

    def resolve_default(self) -> None:
        """Re-choose an automatic default model from the store (no-op for an explicit one)."""
        if self.default_explicit:
            return
        try:
            chosen = choose_default_model(self.store) or PREFERRED_DEFAULT
        except StoreError as exc:
            log.warning("cannot list the model store to choose the default model: %s", exc)
            return
        if chosen != self.default_model:
            log.info(
                "default model: %s (was %s; chosen from the store)", chosen, self.default_model
            )
            self.default_model = chosen

    def stop(self) -> None:
        self._poller.stop()

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

    def serves(self, model: LoadedModel) -> bool:
        """Whether ``model`` is this very object that production or a pin serves now
        (not one a swap replaced, or a pin released, that a request still holds)."""
        return (
            self._models.get(model.name) is model
            or self._pinned.get((model.name, model.version)) is model
        )

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
        A pin of the same version is the same object, and gets ``new`` too.
        """
        with self._lock:
            if self._models.get(current.name) is not current:
                return False
            self._replace(current, new)
            return True

    def pinned(self) -> list[LoadedModel]:
        """The pinned versions ``get_version`` serves right now that ``loaded()`` does
        not list: an experiment's variants that name a version production does not serve
        (a pin of the production version is production's object)."""
        with self._lock:
            return [
                model
                for (name, _), model in self._pinned.items()
                if self._models.get(name) is not model
            ]

    def replace_pinned_if_current(self, current: LoadedModel, new: LoadedModel) -> bool:
        """``replace_if_current`` for a pinned version: swap ``new`` in for ``current``
        unless its entry is no longer that object (released, or pinned again by a new
        load, which got the catalog before its install); production gets ``new`` too
        when it serves that object (a promotion of the pinned version installed it).

        Why pinned versions get copy-on-write updates too: an experiment compares its
        variants; a pinned text-aware version that never got an item put after it loaded
        could not recommend it while the other arm could, biasing the experiment.
        """
        with self._lock:
            if self._pinned.get((current.name, current.version)) is not current:
                return False
            self._replace(current, new)
            return True

    def _replace(self, current: LoadedModel, new: LoadedModel) -> None:
        """Put ``new`` wherever ``current`` is held, production and pin alike: one
        version, one object. Under ``self._lock``."""
        if self._models.get(current.name) is current:
            self._models[current.name] = new
        key = (current.name, current.version)
        if self._pinned.get(key) is current:
            self._pinned[key] = new
        self.generation += 1

    # -- load listeners ---------------------------------------------------------------

    def add_load_listener(
        self, listener: LoadListener, still_current: StillCurrent | None = None
    ) -> None:
        """Run ``listener`` on every version loaded from now on, before it is installed.

        A listener returns the version to install: the one it got, or a
        copy-on-write extension of it (``app.catalog`` adds catalog items
        scored from their text). Listeners run in the order they were added,
        under the store's shared lock on the model (``ModelStore.reading``), so
        the index files they open are the ones the loaded manifest describes; a
        listener must not write to the store (the write would wait for that lock).

        ``still_current``, when given, is asked under the lock that installs the version
        whether what the listener returned is still what it would return now; when it is
        not, every listener runs again on the version as loaded, and the install is tried
        again; the same for a pinned version (``get_version``). Why: a listener extends the
        version with state that changes meanwhile (the catalog), and whoever changes that
        state updates only the *installed* versions (``replace_if_current``,
        ``replace_pinned_if_current``); a version between its listeners and its install was
        missed, and would have served without the change while the writer had answered
        that this server serves it. Checking at the install, rather than running the
        listeners under the install lock, keeps a listener's work (scoring, opening an
        index) off the lock that requests' ``loaded()`` and copy-on-write swaps take.
        The check runs under the holder's lock, so it must be quick and must not take a
        lock that is held while calling into the holder.
        """
        with self._lock:
            self._load_listeners.append((listener, still_current))

    def remove_load_listener(self, listener: LoadListener) -> None:
        """Stop running ``listener`` on loads; no-op when it is not registered."""
        with self._lock:
            self._load_listeners = [entry for entry in self._load_listeners if entry[0] != listener]

    def _on_load(self, model: LoadedModel) -> LoadedModel:
        """The version to install: ``model`` passed through every load listener in turn."""
        with self._lock:
            listeners = [listener for listener, _ in self._load_listeners]
        for listener in listeners:
            model = listener(model)
        return model

    def _still_current(self, model: LoadedModel) -> bool:
        """Whether every listener's check takes ``model`` as what it would return now.
        Called with ``self._lock`` held, in the same hold as the install."""
        return all(check(model) for _, check in self._load_listeners if check is not None)

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
                marker = self.store.alias_marker(name)
            except StoreError as exc:
                raise ModelUnavailable(f"model '{name}': cannot read its alias: {exc}") from exc
            if marker is None:
                if name not in self.available():
                    raise UnknownModel(name, self.available())
                raise ModelUnavailable(
                    f"model '{name}' has no production version; promote one "
                    f"(genrec models promote {name} VERSION)"
                )
            version, promoted_at = marker
            failed = self._standing_refusal(name, version, promoted_at)
            if failed is not None:
                # Do not re-read a refused version on every request; wait for a change.
                raise ModelUnavailable(failed.error)
            return self._load_version(name, version, promoted_at)

    def _standing_refusal(self, name: str, version: str, promoted_at: str) -> LoadFailure | None:
        """The recorded refusal of ``version`` if nothing changed since (no re-promotion, no repair)."""
        failed = self._failures.get(name)
        if failed is None or failed.version != version:
            return None
        if failed.seen != (promoted_at, self.store.version_fingerprint(name, version)):
            return None
        return failed

    def _load_version(self, name: str, version: str, promoted_at: str = "") -> LoadedModel:
        """Load, verify and install ``version``; ``ModelUnavailable`` if it is refused.

        A version an experiment pins, with its files unchanged since, is not read again:
        production installs the pinned object (``_adopt_pinned``)."""
        # Taken before reading, so a repair made while this load runs is still noticed.
        seen = (promoted_at, self.store.version_fingerprint(name, version))
        # The caller holds the model's load lock: only a copy-on-write extension of the
        # same version (``replace_if_current``) can replace this one meanwhile.
        previous = self._models.get(name)

        def install(model: LoadedModel, fingerprint: str) -> bool:
            with self._lock:
                if not self._still_current(model):
                    return False
                self._install(model, fingerprint)
                return True

        try:
            # The version's own lock too, which pins load under: one read of a version.
            with self._version_lock((name, version)):
                model = self._adopt_pinned(name, version, seen[1]) or self._read(
                    name, version, install
                )
        except (StoreError, ModelLoadError) as exc:
            self._record_failure(name, version, exc, seen)
            previous = self._models.get(name)
            suffix = f"; still serving version {previous.version}" if previous else ""
            raise ModelUnavailable(self._failures[name].error + suffix) from exc
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

    def _install(self, model: LoadedModel, fingerprint: str) -> None:
        """Make ``model`` production (the swap: one reference replaced), and the pin of
        its version if one is kept: one version, one object. Under ``self._lock``."""
        name, key = model.name, (model.name, model.version)
        previous = self._models.get(name)
        self._models[name] = model
        if key in self._pinned:
            self._pinned[key] = model
        self.generation += 1
        # The files as read, under the store's lock: a rebuild that was writing them
        # when the load began has finished, and is not taken for a new change.
        self._fingerprints[key] = fingerprint
        self._failures.pop(name, None)
        if previous is not None and previous.version != model.version:
            self._forget_if_unused((name, previous.version))

    def _adopt_pinned(self, name: str, version: str, fingerprint: str) -> LoadedModel | None:
        """Install the pinned object of ``version`` as production when its files are the
        ones it was read from (``fingerprint``: the store's now); None when there is none.

        Its catalog extensions are current: every copy-on-write change reached it as a
        pin, and from the install on, ``_replace`` puts each in both places. Reading it
        again held the version twice until the experiment ended."""
        key = (name, version)
        with self._lock:
            pinned = self._pinned.get(key)
            if pinned is None or self._fingerprints.get(key) != fingerprint:
                return None
            self._install(pinned, fingerprint)
        return pinned

    def _version_lock(self, key: tuple[str, str]) -> threading.Lock:
        """The lock one version is read under, by production and pins alike."""
        with self._lock:
            return self._load_locks.setdefault(f"{key[0]}@{key[1]}", threading.Lock())

    def _read(
        self, name: str, version: str, install: Callable[[LoadedModel, str], bool]
    ) -> LoadedModel:
        """``version`` read, verified, passed through the load listeners and installed:
        ``install(model, fingerprint of its files as read)``, which answers False when a
        listener's result went stale before it could install it (``add_load_listener``);
        the listeners then run again, on the version as read.

        The listeners open the version's index files by path: under the store's shared
        lock, so a rebuild cannot swap them for files the manifest read here does not
        describe. Retries end: the catalog's listener scores under the sync's lock, so
        its revision can move only in the moment between that listener's return and the
        install.
        """
        with self.store.reading(name, version) as loaded:
            built = build_loaded_model(loaded, self.device)
            while True:
                model = self._on_load(built)
                if install(model, loaded.fingerprint):
                    return model
                log.info(
                    "%s version %s: a load listener's state changed before the install "
                    "(a catalog change); running the listeners again",
                    name,
                    version,
                )

    def _record_failure(
        self, name: str, version: str, exc: Exception, seen: tuple[str, str]
    ) -> None:
        self.metrics.model_load_errors.labels(model=name).inc()
        with self._lock:
            self._failures[name] = LoadFailure(
                version=version, error=f"{name} version {version} refused: {exc}", seen=seen
            )
        log.error("refused %s version %s: %s", name, version, exc)

    # -- hot swap ---------------------------------------------------------------------

    def poll_once(self) -> None:
        """One reload check over the loaded models, the default model and the pinned
        versions production does not serve."""
        self.resolve_default()
        with self._lock:
            names = set(self._models) | {self.default_model}
        for name in sorted(names):
            try:
                self._check(name)
            except Exception:  # the reload thread must survive anything
                log.exception("reload check of model %s failed", name)
        for pinned in sorted(self.pinned(), key=lambda model: (model.name, model.version)):
            try:
                self._check_pinned(pinned.name, pinned.version)
            except Exception:
                log.exception("reload check of %s version %s failed", pinned.name, pinned.version)

    def _check(self, name: str) -> None:
        if name not in REGISTRY:
            return
        try:
            marker = self.store.alias_marker(name)
        except StoreError as exc:
            log.warning("cannot read the production alias of %s: %s", name, exc)
            return
        if marker is None:
            return
        target, promoted_at = marker
        if not self._needs_load(name, target, say=False):
            return
        if self._standing_refusal(name, target, promoted_at) is not None:
            return
        with self._lock:
            load_lock = self._load_locks.setdefault(name, threading.Lock())
        # A refusal is recorded and logged; the old version keeps serving.
        with load_lock, contextlib.suppress(ModelUnavailable):
            if self._needs_load(name, target):  # not done meanwhile by another load
                self._load_version(name, target, promoted_at)

    def _needs_load(self, name: str, target: str, *, say: bool = True) -> bool:
        """Whether ``target`` differs from the version served, or its files changed since.

        ``_check`` asks twice, before and under the load lock; only the second answer
        decides, so only it ``say``s why (the first logged the same line once more per
        rebuild).
        """
        current = self._models.get(name)
        if current is None or current.version != target:
            return True
        return self._files_changed(name, target, say=say)

    def _files_changed(self, name: str, version: str, *, say: bool) -> bool:
        """Whether the files of ``version``, in memory, changed since they were read:
        the one check that reloads production and pinned versions alike."""
        served = self._fingerprints.get((name, version))
        if served is None or served == self.store.version_fingerprint(name, version):
            return False
        if say:
            log.info("%s version %s: its files changed; loading it again", name, version)
        return True

    def _check_pinned(self, name: str, version: str) -> None:
        """Read a pinned version again when its files changed (``genrec models index``
        added an index), as ``_check`` does production's: the variant served without
        the index until the experiment ended. A refused reload is logged once per change
        of the files; the pinned object keeps serving, as production's does."""
        key = (name, version)
        if not self._files_changed(name, version, say=False):
            return
        refused = self._pinned_refused.get(key)
        if refused is not None and refused.seen[1] == self._fingerprint(key):
            return
        with self._version_lock(key):
            with self._lock:
                pinned = self._pinned.get(key)
                if pinned is None or self._models.get(name) is pinned:
                    return  # released, or production's now: production's poll reloads it
            seen = ("", self.store.version_fingerprint(name, version))
            if not self._files_changed(name, version, say=True):
                return
            try:
                self._read(name, version, lambda model, read: self._pin(model, read, reload=True))
            except (StoreError, ModelLoadError) as exc:
                self.metrics.model_load_errors.labels(model=name).inc()
                error = f"{name} version {version} refused: {exc}"
                with self._lock:
                    self._pinned_refused[key] = LoadFailure(version, error, seen)
                log.error("%s; still serving the copy read before (pinned)", error)
