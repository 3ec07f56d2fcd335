"""Compare routers: ``python -m routertrain.evaluate ...`` is kept as an alias of ``routertrain evaluate``."""

import sys

from routertrain.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
