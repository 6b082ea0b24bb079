"""Pack file format: the manifest model and the pack-directory parser (docs/packs.md)."""
