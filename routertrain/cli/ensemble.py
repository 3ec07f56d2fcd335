"""Ship several routers of one pool (seeds, checkpoints) as one ensemble router folder.

    python -m routertrain.cli.ensemble OUT RUN RUN [RUN ...] [--device cpu]

The ensemble's P(correct) is the mean of the members'. It is scored on the validation and test
splits of the first member's data config (once, at export; nothing is chosen on either), beside each
member's own validation accuracy, and it loads with ``Router.from_pretrained(OUT)``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from routertrain.cli.args import Parser, fail
from routertrain.cli.common import USER_ERRORS, device_option, score_lines, verdict_lines


def main(argv: list[str]) -> int:
    parser = Parser(prog="python -m routertrain.cli.ensemble", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the ensemble router folder to write")
    parser.add_argument("runs", nargs="+", help="run folders (or their router/ folders) of the members, trained on the same data")
    parser.add_argument("--device", type=device_option, default=None, help="where the members run while scoring (default cuda when available)")
    args = parser.parse_args(argv)
    from routertrain.cli.evaluate import data_config
    from routertrain.config import headline_average
    from routertrain.data import load_routing_data
    from routertrain.hub.ensemble import EnsembleRouter, member_folders, save_ensemble
    from routertrain.hub.router import Router, RouterFolderError
    from routertrain.provenance import writing
    from routertrain.training.loop import router_report

    try:
        paths, configs = member_folders(args.runs)
        ensemble = EnsembleRouter([Router.from_pretrained(p, device=args.device) for p in paths], args.out)
        cfg, _ = data_config(paths[0], [])
        data = load_routing_data(cfg.data)
        metrics = {"models": configs[0]["models"], **{split: router_report(ensemble, data, split, headline_average(cfg), cfg.eval.missing) for split in ("validation", "test")}}
        with writing(args.out):
            save_ensemble(paths, args.out, metrics=metrics)
    except (*USER_ERRORS, RouterFolderError, FileNotFoundError, ValueError) as err:
        return fail(err)
    print("\n".join([*score_lines(metrics), f"ensemble of {len(paths)} routers: {args.out}", *verdict_lines(metrics)]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
