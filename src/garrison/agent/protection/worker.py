"""The scan process: ``python -m garrison.agent.protection.worker --state-dir DIR --params FILE --out FILE``
runs the scan of the ``ScanParams`` JSON in FILE and writes ``{"result": …, "events": …}`` to ``--out``
(whole: a temporary file renamed), started by :mod:`.background`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from garrison.agent.protection.action import scan
from garrison.protocol.protection import ScanParams


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--params", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    params = ScanParams.model_validate_json(args.params.read_text(encoding="utf-8")[: 1 << 20])
    tmp = args.out.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(scan(args.state_dir, params), f)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
