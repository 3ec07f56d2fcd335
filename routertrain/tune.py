"""Search fine-tuning settings on validation: ``python -m routertrain.tune ...`` is kept as an alias of ``routertrain tune``."""

import sys

from routertrain.cli.tune import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
