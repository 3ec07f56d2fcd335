"""``train.py`` with a fault at a chosen point (tests/test_faults.py): ``python tests/fault_points.py STAGE STEP key=value ...``.

Stages: ``checkpoint`` (kill -9 when checkpoint STEP has its tensors but not its manifest),
``during-export`` (after the final evaluation, the router weights written in the
temporary folder), ``before-marker`` (router/ and metrics.json in place, done.json not yet),
``sigterm`` (SIGTERM to itself at the end of optimizer step STEP), ``fsize`` (from the end of
optimizer step STEP on, a file-size limit of ``FSIZE`` bytes: every larger write fails with EFBIG, as on a
full disk; Python ignores SIGXFSZ, so the write raises).
"""

import os
import resource
import signal
import sys

from routertrain.cli.common import main_train
from routertrain.hub import router
from routertrain.training import checkpoints, loop


def kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


FSIZE = 20_000  # more than any log or JSON file of a tiny run, less than its weights


def at_step(step: int, action) -> None:
    """Run ``action`` at the end of optimizer step ``step``, before its logging and checkpointing."""
    end_of_step = loop.end_of_step

    def then(run, progress, on_evaluate):
        if run.step == step:
            action()
        return end_of_step(run, progress, on_evaluate)

    loop.end_of_step = then


def inject(stage: str, step: int) -> None:
    if stage == "checkpoint":
        write = checkpoints.atomic_write_json

        def manifest_then_die(path, obj):
            if path.name == checkpoints.STATE and obj["step"] == step:
                kill()
            write(path, obj)

        checkpoints.atomic_write_json = manifest_then_die
    elif stage == "during-export":
        router.render_card = lambda *a, **k: kill()
    elif stage == "before-marker":
        write = loop.atomic_write_json
        loop.atomic_write_json = lambda path, obj: kill() if path.name == loop.DONE else write(path, obj)
    elif stage == "sigterm":
        at_step(step, lambda: os.kill(os.getpid(), signal.SIGTERM))
    elif stage == "fsize":
        at_step(step, lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE, FSIZE)))
    else:
        raise SystemExit(f"unknown stage {stage}")


if __name__ == "__main__":
    inject(sys.argv[1], int(sys.argv[2]))
    sys.exit(main_train(sys.argv[3:]))
