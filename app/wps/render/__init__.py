"""Encoders: small pure functions from the process model and job rows to lxml elements."""
