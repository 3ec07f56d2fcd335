"""The router that ``routing_speed.py`` measures: MiniLM-L6 (frozen) with a logistic head fitted on RouterDC.

    python benchmarks/speed_router.py --data ../shared/data/routerdc --output checkpoints/routerdc-l6-frozen [--n-train 2000]

The head is fitted on the frozen encoder's mean-pooled vectors of ``n_train`` training queries (speed
does not depend on how well it routes; a real head makes the ONNX-vs-eager agreement meaningful).
"""

from __future__ import annotations

import argparse
from pathlib import Path

ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/routerdc")
    parser.add_argument("--output", type=Path, default=Path("checkpoints/routerdc-l6-frozen"))
    parser.add_argument("--n-train", type=int, default=2000)
    args = parser.parse_args()

    import numpy as np
    import torch
    from transformers import AutoTokenizer

    from routertrain.config import load_config
    from routertrain.data import load_routing_data
    from routertrain.evaluation.decision import score_accuracy
    from routertrain.model.heads import fit_logistic
    from routertrain.hub.router import Router, save_router
    from routertrain.model.encoders import resolve
    from routertrain.model.modeling import RouterModel, load_encoder

    data = load_routing_data(load_config(["data=routerdc", f"data.path={args.data}"]).data)
    model = RouterModel.from_encoder(load_encoder(ENCODER), len(data.models), "mean", dropout=0.0)
    save_router(model, AutoTokenizer.from_pretrained(resolve(ENCODER)), args.output, data.models, data.costs, 128, ENCODER)
    router = Router.from_pretrained(args.output, device="cpu")
    rng = np.random.default_rng(0)
    train = data.splits["train"]
    rows = rng.choice(len(train), min(args.n_train, len(train)), replace=False)
    _, features = router.encode([train["query"][int(i)] for i in rows])
    head = fit_logistic(features, data.labels("train")[rows], 1e-4)
    with torch.no_grad():
        model.head.weight.copy_(head.weight.T)
        model.head.bias.copy_(head.bias)
    save_router(model, AutoTokenizer.from_pretrained(resolve(ENCODER)), args.output, data.models, data.costs, 128, ENCODER)
    test = list(data.splits["test"]["query"])[:500]
    accuracy = score_accuracy(Router.from_pretrained(args.output, device="cpu").predict(test), data.labels("test")[:500])
    print(f"router: {args.output} ({len(data.models)} models; routing accuracy on 500 test queries {accuracy:.4f})")


if __name__ == "__main__":
    main()
