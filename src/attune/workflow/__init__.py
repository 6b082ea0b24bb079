"""Workflows: the language (spec), its expressions, and the pure conductor that runs the graph."""
