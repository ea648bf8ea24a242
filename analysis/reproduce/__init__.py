"""Judging a reproduction (``loadgate reproduce NAME``): where each side broke and why.

The seed's bottleneck claims (:mod:`.registry`), the metric that explains each
(:mod:`.metrics`), each side's breaking point (:mod:`.breaking`) and the verdict
(:mod:`.verdict`, over the types of :mod:`.outcome`). Running the two sides is
orchestration and stays in ``loadgate/reproduce/`` (``runner``, ``cli``); the plans are
configuration (:mod:`runconfig.reproduce`).
"""
