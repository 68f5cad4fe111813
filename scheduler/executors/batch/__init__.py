"""Batch systems: jobs that wait in a scheduler's queue and run ``python -m scheduler.run_job DIR`` on a node.

``base.py`` does once what every batch system needs (idempotent submission, commands run and counted,
one poll for many jobs, cancel requests, the defaults a job gets); each system's module holds its
commands and its vocabulary: ``slurm.py`` (the Slurm executor, its submit script ``slurm.sh`` beside
it), ``gridengine.py`` (Grid Engine's states and endings), ``pbs.py`` (TORQUE's listing). ``drmaa.py``
is the DRMAA executor, which submits through the library and polls with those systems' listings.
"""
