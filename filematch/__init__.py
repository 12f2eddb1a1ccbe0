"""filematch."""
