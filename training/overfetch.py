"""How many candidates a user's list asks the retrieval index for (serving's over-fetch).

Why here: serving (``app.serving.retrieval``) fetches this many for every list it answers
from the index, and the index's build-time calibration (``training.ann``) must measure
recall on the lists served so; training never imports ``app``, so the rule lives on this
side. No heavy imports: ``app.core.config`` takes its defaults from here.
"""

from __future__ import annotations

#: ``GENREC_ANN_CANDIDATES``'s default: candidates beyond the masked items (at least k).
ANN_CANDIDATES = 200
#: ``GENREC_ANN_MAX_CANDIDATES``'s default: a list that would need more is ranked exactly.
ANN_MAX_CANDIDATES = 10_000


def candidates_to_fetch(needed: int, candidates: int, masked: int) -> int:
    """Candidates to ask for: ``candidates`` (at least the ``needed`` unmasked ones: k, or a
    diversity rule's first pool) and one more per masked item (seen, excluded), so masking
    cannot leave the list short unless the index finds fewer distinct items."""
    return max(candidates, needed) + masked
