"""Which model answers requests that name none, when ``GENREC_DEFAULT_MODEL`` is not set.

A store trained with only one model (say ``i-autorec``) must still serve: a
fixed default of ``mult-vae`` would leave such a server unready forever. So,
unless the operator names a default (which then stays strict), the default is
``mult-vae`` if it has a production version, else the only model with one,
else the one promoted most recently. The holder re-resolves on every poll, so
a model promoted later can become the default without a restart.
"""

from __future__ import annotations

import logging

from models_store import ModelStore, StoreError
from training.models import REGISTRY

log = logging.getLogger(__name__)

#: The default when it has a production version (and the fallback name when nothing has).
PREFERRED_DEFAULT = "mult-vae"


def production_models(store: ModelStore) -> dict[str, str]:
    """Servable model name -> when its ``production`` alias last moved (ISO-8601 UTC)."""
    out: dict[str, str] = {}
    for name in store.list_models():
        if name not in REGISTRY:
            continue
        try:
            marker = store.alias_marker(name)
        except StoreError as exc:  # one unreadable alias must not hide the others
            log.warning("cannot read the production alias of %s: %s", name, exc)
            continue
        if marker is not None:
            out[name] = marker[1]
    return out


def choose_default_model(store: ModelStore) -> str | None:
    """The automatic default (see the module docstring); None when no model has production."""
    promoted = production_models(store)
    if PREFERRED_DEFAULT in promoted:
        return PREFERRED_DEFAULT
    if not promoted:
        return None
    # One model: itself. Several: the newest promotion (ISO-8601 UTC sorts as text; name breaks ties).
    return max(promoted, key=lambda name: (promoted[name], name))
