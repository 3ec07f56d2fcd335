"""A sweep's points: what each runs (its command), where it writes, when it is finished; the
errors of the sweep runner. Shared by the sweep file reader (``sweep``) and the executors that run
points (``local``: on this machine; ``slurm``: as SLURM jobs)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from routertrain.provenance import finished

# folder points and the file each writes last (a study exports its best router once all its trials finished)
FOLDER_KINDS = {"blend": "blend.json", "ensemble": "ensemble.json", "tune": "best/study.json"}


class SweepError(ValueError):
    """A malformed sweep file, reported in one line."""


class SweepInterrupted(SweepError):
    """The runner got SIGTERM or SIGINT: the running point saved a checkpoint; rerunning continues."""


@dataclass
class Point:
    kind: str  # train, evaluate, blend, ensemble or tune
    name: str  # unique within the sweep, derived from the grid values
    args: list[str]  # key=value arguments
    output: Path  # run folder (train), JSON file (evaluate), router folder (blend, ensemble) or study folder (tune)
    group: int = 0  # index of its group in the sweep file
    needs: tuple = ()  # the points of the sweep it reads (its @<point> references)
    slurm: dict = field(default_factory=dict)  # its group's SLURM resources (the sweep's, then the group's own)

    def done(self) -> bool:
        if self.kind in FOLDER_KINDS:  # the file each writes last, atomically
            return (self.output / FOLDER_KINDS[self.kind]).is_file()
        return finished(self.output) if self.kind == "train" else self.output.is_file()

    def command(self, accelerate_config: str = "accelerate_config.yaml") -> list[str]:
        if self.kind == "train":
            # --quiet: a failing run shows its own one-line error, not accelerate's traceback of the subprocess;
            # -m: the installed package's entry point, so a sweep runs outside the repository too (where the
            # default accelerate_config.yaml may be absent: accelerate's own defaults then apply)
            config = ["--config_file", accelerate_config] if accelerate_config != "accelerate_config.yaml" or Path(accelerate_config).is_file() else []
            return ["accelerate", "launch", "--quiet", *config, "-m", "routertrain.cli.train", *self.args]
        if self.kind == "blend":
            return ["python", "-m", "routertrain.cli.blend", str(self.output), _kv(self.args).get("run", "")]
        if self.kind == "ensemble":
            return ["python", "-m", "routertrain.cli.ensemble", str(self.output), *members(self.args)]
        if self.kind == "tune":
            return ["python", "-m", "routertrain.cli.tune", *self.args]
        return ["python", "-m", "routertrain.cli.evaluate", *self.args, "--json", str(self.output)]


def _kv(args) -> dict:
    """A point's key=value arguments as a mapping."""
    return dict(a.split("=", 1) for a in args if "=" in a)


def members(args) -> list[str]:
    """An ensemble point's member runs: its ``runs=[a,b,...]`` argument as a list."""
    text = _kv(args).get("runs", "").strip()
    return [m.strip() for m in text.removeprefix("[").removesuffix("]").split(",") if m.strip()]


def runnable(cmd: list[str], processes: int | None = None) -> list[str]:
    """A point's command run by this interpreter and its launcher, whatever PATH says; ``processes``: a train
    point's ``accelerate launch --num_processes`` (several: ``--multi_gpu``), as many as its job has GPUs."""
    if cmd[0] != "accelerate":
        return [sys.executable, *cmd[1:]]
    launch = ["--num_processes", str(processes), *(["--multi_gpu"] if processes > 1 else [])] if processes else []
    return [sys.executable, "-m", "accelerate.commands.launch", *launch, *cmd[2:]]


def launch_env() -> dict:
    """The environment of a launched point. ``accelerate launch`` pins a one-process run to a single
    CPU thread (OMP_NUM_THREADS=1) unless the variable is set, so a local run gets every core."""
    return {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count() or 1)}
