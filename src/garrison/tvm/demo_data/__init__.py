"""Real package inventories of OS images for the demo fleet (see data/PROVENANCE.md)."""
