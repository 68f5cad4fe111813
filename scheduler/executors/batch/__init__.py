"""Batch systems: jobs that wait in a scheduler's queue and run ``python -m scheduler.run_job DIR`` on a node.

``base.py`` does once what every batch system needs (idempotent submission, commands run and counted,
polls, cancel requests); each system's module holds its commands and its vocabulary.
"""
