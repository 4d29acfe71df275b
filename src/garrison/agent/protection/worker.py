"""The scan process: ``python -m garrison.agent.protection.worker --state-dir DIR`` reads the
``ScanParams`` JSON on stdin, runs the scan and writes ``{"result": …, "events": …}`` on stdout."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from garrison.agent.protection.action import scan
from garrison.protocol.protection import ScanParams


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--state-dir", type=Path, required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    params = ScanParams.model_validate_json(sys.stdin.read(1 << 20))
    json.dump(scan(args.state_dir, params), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
