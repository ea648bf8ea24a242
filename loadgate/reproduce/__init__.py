"""``loadgate reproduce NAME``: one of the seed's bottleneck claims, checked by running the
same load plan against a "before" and an "after" architecture and comparing where each
breaks and why (registry: :mod:`loadgate.reproduce.registry`).

Kept free of imports: :mod:`loadgate.phase_config` imports :mod:`.config` from here.
"""
