"""PyWPS 4.x processes served unchanged: each is mapped into the process model once, at start, and run
through PyWPS's own request and response classes, so the rest of the service never knows where a
process came from.

``load`` finds PyWPS processes behind an import path and re-creates them from it wherever a job runs;
``describe`` maps their inputs and outputs into the model; ``request`` builds the ``request`` a handler
reads, ``response`` the ``response`` it writes and what it wrote back into outputs; ``config`` answers
``pywps.configuration`` from this service's settings; ``handler`` ties them together for one job.
PyWPS is an optional extra: only ``load`` is imported without it, and it imports the others once it
has found a PyWPS process.
"""

from processes.pywps_adapter.load import PywpsSettings, adapt

__all__ = ["PywpsSettings", "adapt"]
