"""Attune's stand-in for StackStorm's ``st2reactor`` (only what pack code imports)."""
