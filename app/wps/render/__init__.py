"""Encoders: small pure functions from the process model and jobs to lxml elements."""
