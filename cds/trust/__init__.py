"""Trusting CDS clients: JWT verification, the trusted-client file, key sets, replay."""
