"""Runs written into a directory: settings, files, the sweep loop, progress and report.

``spec`` (settings, checked without the model's weights), ``store`` (the run
directory's files, read back strictly), ``progress`` (a bar or plain lines),
``loop`` (sweeps, checkpoints, signals) and ``report`` (InferenceData, summary, plots).
Import from the submodules; this package imports nothing heavy by itself.
"""
