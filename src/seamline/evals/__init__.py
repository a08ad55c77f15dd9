"""Evals: eval sets, scorers, judges, the runner, the statistics and the release gate.

A library (it never imports the gateway): the CLI runs it (``seamline evals``), the registry
consults its gate before a release, and the gateway's online quality sampler reuses its
scorers.
"""
