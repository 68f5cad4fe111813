"""Real batch systems and container engines: Slurm, Grid Engine through its DRMAA library, Podman's
Docker API (``scripts/services.sh start`` brings them up)."""
