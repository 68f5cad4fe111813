"""The production shape: ``hpc-wps serve`` under load, processes killed, databases restarted,
several dispatchers at once."""
