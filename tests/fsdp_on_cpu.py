"""Run a script under accelerate's FSDP2 path on CPU processes, so the tests can exercise sharding.

accelerate turns FSDP on only for accelerator devices: on a CPU-only machine a launch with
``accelerate_configs/fsdp.yaml`` trains unsharded (distributed type MULTI_CPU). torch's FSDP2
(``fully_shard``) itself runs on CPU over gloo, so this launcher lets the test suite drive the real
FSDP path (DTensor shards, full-state gathering for the best weights and the router export,
sharded ``save_state``/``load_state``): it lets accelerate set up the CPU process group, then
relabels the run as multi-GPU before the ``Accelerator`` is built, which makes accelerate apply the
FSDP plugin that ``accelerate launch --config_file accelerate_configs/fsdp.yaml`` configured.

    accelerate launch --config_file accelerate_configs/fsdp.yaml --num_processes 2 --mixed_precision no \\
        tests/fsdp_on_cpu.py train.py recipe=smoke ...

Test-only: it touches accelerate's shared process state, which a real GPU launch never needs.
"""

import os
import runpy
import sys

from accelerate.state import PartialState
from accelerate.utils import DistributedType


def main() -> None:
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true":
        sys.exit("error: fsdp_on_cpu.py needs an FSDP launch: accelerate launch --config_file accelerate_configs/fsdp.yaml ...")
    state = PartialState(cpu=True)
    if state.distributed_type != DistributedType.MULTI_CPU:
        sys.exit(f"error: fsdp_on_cpu.py expects several CPU processes, got {state.distributed_type.value}; launch with --num_processes 2 on a CPU machine")
    PartialState._shared_state["distributed_type"] = DistributedType.MULTI_GPU  # read by AcceleratorState to enable FSDP
    script, *args = sys.argv[1:]
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
