"""``loadgate reproduce NAME``: one of the seed's bottleneck claims, checked by running the
same load plan against a "before" and an "after" architecture and comparing where each
breaks and why (registry: :mod:`analysis.reproduce.registry`).

The plans themselves are configuration (:mod:`runconfig.reproduce`).
"""
