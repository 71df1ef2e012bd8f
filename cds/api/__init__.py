"""HTTP routes: thin wrappers over the plain modules of :mod:`cds`."""
