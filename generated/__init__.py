"""Committed generated modules (reproducible with `optinv compile`)."""
