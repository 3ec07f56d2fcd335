"""``routertrain tune``: hyperparameter search on validation, then the best router exported.

    routertrain tune recipe=minilm-l6 data=routerdc data.path=../shared/data/routerdc tune.trials=30

Arguments are those of training (recipe=, data=, key=value) plus ``tune.*`` (trials, space, study,
storage, seed, startup_trials, warmup_steps, heartbeat_s). Prints the study's counts and the best
router's numbers, and says so when it does not beat the best single model or the task prior.
"""

from __future__ import annotations

import sys

from routertrain.cli.args import fail
from routertrain.cli.common import DEFAULT_RECIPE, USER_ERRORS, score_lines, verdict_lines
from routertrain.config import valid_keys

USAGE = f"""usage: routertrain tune [recipe=NAME] [data=NAME] [key=value ...] [tune.trials=N] [tune.storage=URL]

Searches the space recipes/search/<tune.space>.yaml on validation routing accuracy (Optuna TPE,
median pruning after each evaluation). Rerun the same command to continue a killed study; run it on
many machines with one shared tune.storage (e.g. postgresql://...) to search in parallel.
tune keys: {', '.join(k for k in valid_keys() if k.startswith('tune.'))}
"""


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
    try:
        from routertrain.training.tune import tune
    except ModuleNotFoundError as err:
        if err.name not in ("optuna", "sqlalchemy"):
            raise
        return fail(f"the search needs {err.name}: pip install 'routertrain[tune]'")

    try:
        out = tune(list(argv), default_recipe=DEFAULT_RECIPE)
    except USER_ERRORS as err:
        return fail(err)
    trials = out["trials"]
    print(f"study {out['study']}: {trials['complete']} complete, {trials['pruned']} pruned, {trials['fail']} failed trials ({out['folder']})")
    for note in out["notes"]:
        print(f"note: {note}")
    if "best" not in out:
        if not out["notes"]:
            print("no trial completed: nothing exported")
        return 0 if out["trials"]["complete"] else 1
    best = out["best_trial"]
    print(f"best trial {best['trial']}: {', '.join(f'{k}={v}' for k, v in best['params'].items())}")
    print("\n".join([*score_lines(out["metrics"]), f"router:  {out['best']} (its README.md names the study and the search)", *verdict_lines(out["metrics"])]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
