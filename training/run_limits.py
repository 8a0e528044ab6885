"""The largest count each option of a run may take: processes, threads, index lists.

Why: these options were bounded below only, so ``genrec train --nproc 100000`` had
torchrun start that many processes, ``genrec evaluate --threads 100000`` asked OpenMP
for that many threads (``2**40``: torch's overflow traceback), and ``genrec models
index --nlist 10**9`` was refused only after the version was read and its users'
queries computed. They are bounded like a model's settings
(``training.models.limits``, the size of a job): far above any real run, so they stop
typos and runaways, not large machines. The CLI declares them as its options' ``max``
(a usage error naming the option, exit code 2). They live apart from
``training.models.limits`` because that package imports torch, and the options are
declared when the CLI is imported (``genrec --help`` stays quick). Documented in
docs/design.md ("Command line").
"""

from __future__ import annotations

#: Processes ``genrec train --nproc`` (or ``genrec serve --workers``) starts on one
#: machine: one per GPU or per core, and no single machine has more than this many.
MAX_PROCESSES = 1_024
#: torch CPU threads (``genrec evaluate --threads``): one per core, as above.
MAX_THREADS = 1_024
#: IVF lists of a retrieval index, and lists a query searches by default (``genrec models
#: index --nlist/--nprobe/--similar-nprobe``): FAISS's own guidelines stop at 2**20
#: lists, for a billion vectors; the default nlist (about 4 sqrt(items)) is 185,364 for
#: the most items a 32-bit index holds.
MAX_IVF_LISTS = 1_048_576
