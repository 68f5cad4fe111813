"""Fast tests that need no service: settings, parsers, executors against fake commands, the job
table's guards on SQLite. ``pytest tests/unit`` runs alone in seconds."""
