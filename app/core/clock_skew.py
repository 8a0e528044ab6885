"""How far apart the clocks that stamp a list and the events answering it may be.

A list's time is the replica's that served it; an event's is another replica's, or the
client's when it sends ``timestamp``. An event may therefore be stamped a little
before the list it answers. The experiment results (``app.experiments.results``)
accept an event up to this much earlier than the list it is attributed to, so that
what attribution credits they count. Attribution's window rule
(``app.serving.attribution``) uses the tolerance only where the times show skew (an
event stamped on receipt, a list of another replica already written); a list
stamped after a client's ``timestamp`` never answers it. Anything earlier answers
no list (a click stamped in 2020 on a list served today).
"""

from __future__ import annotations

from datetime import timedelta

CLOCK_TOLERANCE = timedelta(minutes=1)
