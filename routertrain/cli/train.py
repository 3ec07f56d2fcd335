"""Fine-tune a router from a recipe and key=value overrides (one process; several with accelerate launch).

    routertrain train recipe=smoke train.lr=2e-5
    accelerate launch --config_file accelerate_config.yaml -m routertrain.cli.train recipe=minilm-l6

The repository's ``train.py`` runs the same function (``cli.common.main_train``).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from routertrain.cli.common import main_train

    return main_train(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
