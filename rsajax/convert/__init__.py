"""Checkpoint conversion: mace-torch -> rsajax (needs the [torch] extra; torch imported lazily)."""
