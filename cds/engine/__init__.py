"""Rule evaluation over one patient's record. Pure: no I/O, no web framework."""
