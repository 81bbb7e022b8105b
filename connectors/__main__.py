"""``python -m connectors run|install --config FILE``: the sidecar without the ``xhub`` wrapper."""

from __future__ import annotations

import sys

from connectors.cli import main

if __name__ == "__main__":
    sys.exit(main())
