"""The local dev stack: `python dev.py up [--workers N]`, `python dev.py demo`."""

import sys

from devkit.stack.cli import main

if __name__ == "__main__":
    sys.exit(main())
