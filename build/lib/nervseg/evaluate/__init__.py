"""Evaluation: scores against ground truth, statistics, presence calibration, batches, reports.

    python -m nervseg.evaluate --help
"""
