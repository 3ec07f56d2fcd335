"""Calibration on MMLU-Pro-27: solve each target on the validation split, check it on the test split.

    python benchmarks/calibrate_mmlu_pro.py      (after benchmarks/add_model_mmlu_pro.py, whose outputs it reads)

Uses the frozen-MiniLM-L3 router saved by ``add_model_mmlu_pro.py --save-router checkpoints/mmlu-pro-l3-frozen``
and that script's cached pooled features (so no encoder runs here: probabilities = sigmoid(head(features))),
with the illustrative prices of ``data=mmlu-pro-priced``. Targets are solved by ``routertrain.hub.calibrate.solve``
(what ``Router.calibrate`` and the calibrate command run) on the validation questions as unlabelled traffic
(labelled for --keep-accuracy); the test split shows whether the setting holds on queries it was not solved on.
Test accuracy scores the decisions ``route()`` makes (over the whole pool) on the questions with every label,
as the evaluator does by default (eval.missing=complete).
"""

import contextlib, io, json
import numpy as np
from safetensors.torch import load_file
from routertrain.config import load_config
from routertrain.data import load_routing_data
from routertrain.hub.calibrate import solve, decisions
from routertrain.evaluation.decision import chosen_accuracy
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    data = load_routing_data(load_config(["data=mmlu-pro-priced", "data.path=../shared/data/mmlu-pro-outputs", "data.pool=open-weight"]).data)
w = load_file("checkpoints/mmlu-pro-l3-frozen/model.safetensors")
W, b = w["head.weight"].numpy(), w["head.bias"].numpy()
cfg = json.load(open("checkpoints/mmlu-pro-l3-frozen/config.json"))
assert [cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))] == data.models
probs = {s: 1 / (1 + np.exp(-(np.load(f"checkpoints/add-model-features/{s}.npy") @ W.T + b))) for s in ("validation", "test")}
y = {s: data.labels(s) for s in probs}
models, costs = data.models, data.costs
def acc(setting):  # routing accuracy as the metrics define it: the shipped decisions, scored on fully labelled questions
    return chosen_accuracy(decisions(probs["test"], models, costs, setting), y["test"])

best = "DeepSeek-Coder-V2"
for share in (0.5, 0.2, 0.05):
    s = solve(probs["validation"], models, costs, max_share={best: share})
    c = decisions(probs["test"], models, costs, s)
    print(f"max-share {best}={share}: w={s['cost_weight']:.4f} validation {s['reached']['share']:.3f} test {(np.array(models)[c]==best).mean():.3f} test acc {acc(s):.4f}")
c0 = decisions(probs["test"], models, costs, None)
print(f"no calibration: test mean cost {np.asarray(costs)[c0].mean():.3f} acc {acc(None):.4f} share {best} {(np.array(models)[c0]==best).mean():.3f}")
for target in (0.5, 0.3, 0.2):
    s = solve(probs["validation"], models, costs, mean_cost=target)
    c = decisions(probs["test"], models, costs, s)
    print(f"mean-cost {target}: w={s['cost_weight']:.4f} validation {s['reached']['mean_cost']:.3f} test {np.asarray(costs)[c].mean():.3f} test acc {acc(s):.4f}")
for keep in (0.99, 0.95):
    s = solve(probs["validation"], models, costs, accuracy_share=keep, labels=y["validation"])
    c = decisions(probs["test"], models, costs, s)
    print(f"keep-accuracy {keep}: w={s['cost_weight']:.4f} validation acc {s['reached']['accuracy']:.4f}/{s['reached']['accuracy_at_zero']:.4f} cost {s['reached']['mean_cost']:.3f}; test acc {acc(s):.4f} cost {np.asarray(costs)[c].mean():.3f}")
try:
    solve(probs["validation"], models, costs, mean_cost=0.1)
except Exception as e:
    print("unreachable:", e)
