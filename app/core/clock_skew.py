"""How far apart the clocks that stamp a list and the events answering it may be.

A list's time is the replica's that served it; an event's is another replica's, or the
client's when it sends ``timestamp``. An event may therefore be stamped a little
before the list it answers. Attribution (``app.serving.attribution``, the window
rule) and the experiment results (``app.experiments.results``) both accept an event
up to this much earlier than its list, so that what one attributes the other counts.
Anything earlier answers no list (a click stamped in 2020 on a list served today).
"""

from __future__ import annotations

from datetime import timedelta

CLOCK_TOLERANCE = timedelta(minutes=1)
