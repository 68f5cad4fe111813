"""PyWPS 4.8.1 equivalents of hpc-wps's benchmark processes (bench only)."""
