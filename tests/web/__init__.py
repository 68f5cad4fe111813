"""The WSGI application (and, where a test needs it, ``hpc-wps serve``) against SQLite and PostgreSQL:
every response a client sees, validated against the OGC schemas."""
