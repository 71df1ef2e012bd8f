"""One module per schema revision, applied in order by :mod:`cds.store.migrate`."""
