"""Helpers of the benchmark harness (bench.py): stack, machine facts, workloads."""
