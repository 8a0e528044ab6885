"""``python -m training.protocols NAME --model M --data D [--seeds 0 1 2] [--set k=v] [--option k=v]``.

Prints the report's markdown section (or JSON with ``--json``), the form
``docs/accuracy.md`` quotes together with this very command line.
"""

from __future__ import annotations

import argparse
import sys

import torch

from training.key_values import parse_pairs
from training.protocols import protocol


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.protocols", description=__doc__)
    parser.add_argument("protocol")
    parser.add_argument("--model", required=True)
    parser.add_argument(
        "--data", required=True, help="data spec (ml-100k, PATH.csv, irgan-ml-100k, ...)"
    )
    parser.add_argument("--data-dir", default=None, help="default: GENREC_DATA_DIR")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", action="append", default=[], help="model setting key=value")
    parser.add_argument("--option", action="append", default=[], help="protocol option key=value")
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = protocol(args.protocol).run(
        args.model,
        args.data,
        seeds=args.seeds,
        overrides=parse_pairs(args.set, "--set"),
        data_dir=args.data_dir,
        callbacks=None,
        options=parse_pairs(args.option, "--option"),
    )
    sys.stdout.write(report.to_json() + "\n" if args.json else report.to_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
