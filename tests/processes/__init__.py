"""Processes that only tests enable (through ``[processing] processes``), to observe what the service does."""
