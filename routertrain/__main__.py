"""``python -m routertrain``: the same as the ``routertrain`` command (``routertrain.cli.main``)."""

import sys

from routertrain.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
