"""The performance benchmark of the CDS service against a bare FastAPI ceiling (`make bench`)."""
