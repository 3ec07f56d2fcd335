"""The package installed from a wheel, outside the repository: ``routertrain train recipe=smoke`` and
``routertrain route`` run from a fresh virtual environment, with recipes read from the package.

Slow (a wheel build, a venv and a short training run, about a minute): marked ``wheel``; ``make test``
runs it, ``pytest -m "not wheel"`` skips it in quick loops. Dependencies are not reinstalled: the
new venv sees this interpreter's site-packages through a ``.pth`` file (whose own ``.pth`` lines, such
as an editable install's finder, are not executed), and the wheel goes in with ``--no-deps``.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run(cmd, **kwargs):
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.mark.wheel
def test_wheel_installed_outside_the_repo_trains_and_routes(tiny_encoder, tmp_path):
    source = tmp_path / "src"  # build from a copy, so the repository gets no build/ or egg-info
    for folder in ("routertrain", "recipes"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", source])
    wheel = next((tmp_path / "dist").glob("routertrain-*.whl"))

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    purelib = Path(run([bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (purelib / "host-site-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}  # nothing of the repository on the path
    run([sys.executable, "-m", "pip", "--python", bin_dir / "python", "install", "-q", "--no-deps", wheel], env=env)

    env.update(ROUTERTRAIN_CACHE=str(tmp_path / "cache"), PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = run([bin_dir / "python", "-c", "import routertrain; print(routertrain.__file__)"], cwd=work, env=env).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the installed wheel, not the repository

    listed = run([bin_dir / "routertrain", "recipes", "ls"], cwd=work, env=env).stdout
    assert "smoke" in listed and "sweeps/smoke" in listed and "data/routerdc" in listed
    run([bin_dir / "routertrain", "recipes", "cp", "sweeps/smoke", "my-sweep.yaml"], cwd=work, env=env)
    assert "claim:" in (work / "my-sweep.yaml").read_text()
    train = run([
        bin_dir / "routertrain", "train", "recipe=smoke", f"model.name_or_path={tiny_encoder}", "run.output_dir=runs", "run.name=wheel",
        "data.synthetic.n_train=32", "data.synthetic.n_validation=8", "data.synthetic.n_test=8", "train.global_batch_size=8", "train.max_steps=2",
    ], cwd=work, env=env)
    assert "router:  runs/wheel/router" in train.stdout
    routed = run([bin_dir / "routertrain", "route", "runs/wheel", "Explain the binary search briefly."], cwd=work, env=env)
    assert '"model":' in routed.stdout and "probabilities" in routed.stdout
