"""What a shipped router computes at inference, in one place and importing nothing else of routertrain:
the routing rule (``rule``: the cost-aware choice, tie breaking, non-finite values), the nearest-
neighbour search and averaging (``neighbours``) and the blend of a fine-tuned router with kNN and the
soft task prior (``blend``). Evaluation, the Router API, calibration and serving all call these.
"""
