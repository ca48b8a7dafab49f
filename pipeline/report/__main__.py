"""python -m pipeline.report OUT: (re)build OUT/report.html from what the output directory holds."""

from __future__ import annotations

import argparse
import sys

from pipeline.report.page import ReportInputError, write_report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.report", description="(Re)build OUT/report.html.")
    p.add_argument("out", help="a run's output directory (holds report.json; manifest.json when it exported)")
    args = p.parse_args(argv)
    try:
        path = write_report(args.out)
    except ReportInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
