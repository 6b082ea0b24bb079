"""Pack installation: sources, registry indices, dependencies, environments, tests, atomic swap.

See docs/packs.md ("Installing packs"). :mod:`attune.packs.install.installer` is the entry point.
"""
