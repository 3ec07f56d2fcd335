"""Train a router: ``accelerate launch --config_file accelerate_config.yaml train.py recipe=minilm-l6 train.lr=2e-5``.

Parses ``recipe=NAME``, ``data=NAME`` and ``key=value`` overrides, then calls ``routertrain.train``.
"""

import sys

from routertrain.cli.common import main_train

if __name__ == "__main__":
    sys.exit(main_train(sys.argv[1:]))
