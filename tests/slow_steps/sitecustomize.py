"""Test hook (``PYTHONPATH=tests/slow_steps``): each optimizer step of a training run sleeps
``ROUTERTRAIN_TEST_STEP_SLEEP`` seconds and prints ``[slow-steps] step N``, so a test can cancel a job
mid-training. Other processes only pay for installing an import hook."""

import importlib.abc
import importlib.util
import os
import sys
import time

TARGET = "routertrain.training.loop"


class SlowSteps(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module

        def exec_and_slow(module):
            exec_module(module)
            inner = module.end_of_step

            def slow(run, progress, on_evaluate):
                print(f"[slow-steps] step {run.step}", file=sys.stderr, flush=True)
                time.sleep(float(os.environ["ROUTERTRAIN_TEST_STEP_SLEEP"]))
                return inner(run, progress, on_evaluate)

            module.end_of_step = slow

        spec.loader.exec_module = exec_and_slow
        return spec


if os.environ.get("ROUTERTRAIN_TEST_STEP_SLEEP"):
    sys.meta_path.insert(0, SlowSteps())
