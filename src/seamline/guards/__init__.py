"""Guards: detectors, sanitisers and the policies that decide what happens on a finding.

A library (it never imports the gateway): the gateway runs it as the ``guard in`` and ``guard
out`` stages of the request path, the CLI runs it in ``seamline guard test`` and ``guard
eval``.
"""
