"""Experiments: sweeps over runs and evaluations, the paper's claims judged on them, the report and its plots."""
