"""The PrefEval report from a run's per-example file, also from a run that was cut short
(``pgen bench prefeval --out DIR`` appends each item's rows as they are scored).

    python benchmarks/prefeval_report.py runs/prefeval-smollm2/examples.jsonl --title SmolLM2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pgen.bench.prefeval_report import report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("examples", type=Path, help="examples.jsonl of a prefeval run")
    parser.add_argument("--title", default="PrefEval classification", help="report heading")
    args = parser.parse_args()
    lines = args.examples.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    if not rows:
        raise SystemExit(f"{args.examples}: no rows")
    print(report(rows, args.title))


if __name__ == "__main__":
    main()
