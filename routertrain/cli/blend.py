"""Blend a trained router with kNN on its own embeddings and the task prior, weights chosen on validation.

    routertrain blend OUT RUN [--device cpu]         # RUN: a run, router or ensemble folder

k and the weights are chosen on the validation split of RUN's data config (nothing else is tried on
test); the blend is then scored on validation and on test, once, at export. OUT is a router folder
that loads with ``Router.from_pretrained(OUT)`` and needs no task label at inference
(``routertrain.hub.blend``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from routertrain.cli.args import Parser, fail
from routertrain.cli.common import USER_ERRORS, device_option, score_lines, verdict_lines


def main(argv: list[str]) -> int:
    parser = Parser(prog="routertrain blend", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the blend router folder to write")
    parser.add_argument("run", help="the run folder (or its router/ folder, or an ensemble folder) to blend")
    parser.add_argument("--device", type=device_option, default=None, help="where the router runs (default cuda when available)")
    args = parser.parse_args(argv)
    from routertrain.cli.evaluate import data_config
    from routertrain.config import headline_average
    from routertrain.data import load_routing_data
    from routertrain.evaluation.blend import fit_router_blend
    from routertrain.hub.blend import save_blend
    from routertrain.hub.router import BLEND, BlendRouter, Router, RouterFolderError, router_folder
    from routertrain.provenance import writing
    from routertrain.training.loop import router_report

    try:
        source = router_folder(args.run)
        if (source / BLEND).is_file():
            raise ValueError(f"{source} is already a blend; pass the run folder of the router it was made from")
        router = Router.from_pretrained(source, device=args.device)
        cfg, _ = data_config(source, [])
        average = headline_average(cfg)
        data = load_routing_data(cfg.data)
        mem, spec = fit_router_blend(router, data, average, missing=cfg.eval.missing)
        blended = BlendRouter.wrap(router, mem, spec)
        metrics = {"models": router.models, **{split: router_report(blended, data, split, average, cfg.eval.missing) for split in ("validation", "test")}}
        with writing(args.out):
            save_blend(source, args.out, mem, spec, metrics=metrics)
    except (*USER_ERRORS, RouterFolderError, FileNotFoundError, ValueError) as err:
        return fail(err)
    weights = ", ".join(f"{name} {w:g}" for name, w in spec["weights"].items())
    print("\n".join([
        *score_lines(metrics),
        f"blend (chosen on validation): {weights}; k={spec['k']}; validation {spec['validation_acc']['blend']:.4f} "
        f"(fine-tuned alone {spec['validation_acc']['finetuned']:.4f}, kNN {spec['validation_acc']['knn']:.4f}, soft task prior {spec['validation_acc']['prior']:.4f})",
        f"blend router: {args.out}",
        *verdict_lines(metrics),
    ]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
