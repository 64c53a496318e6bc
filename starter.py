"""Submit entity files and follow them: `python starter.py --help`."""

import os
import sys

from dsp_integration.commands.starter import main

if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal core runtime can crash at interpreter exit (sdk-python #300); keep the code.
    os._exit(code)
