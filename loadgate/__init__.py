"""loadgate: run orchestration and the command line.

The stack lives in :mod:`stack`, the system under test in :mod:`marketplace`,
load in :mod:`scenarios`, data in :mod:`fixtures`, numbers in :mod:`analysis`
and :mod:`reports`; this package ties them into runs and commands.
"""

__version__ = "0.1.0"
