"""One CDS service call: prefetch, evaluation, findings, card rendering, repeat limits."""
