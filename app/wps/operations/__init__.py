"""The WPS operations, one module per group, each a parsed request in and a reply out.

Why a package of small modules: a reader who looks for what Execute does opens ``execute.py``, and the
OGC API - Processes binding to come can mirror the layout. Each operation only checks what the
protocol defines (versions, modes, input encodings), calls the job service (``scheduler/service.py``)
and renders what it returns; the rules of jobs (queue limit, time limits, dismissal, where files are)
are the service's. Its errors reach the views, which map them with ``app/wps/error_map.py``.

- ``context.py``: what every operation reads (the job service, the public URL, the language) and the Reply.
- ``discovery.py``: GetCapabilities and DescribeProcess, rendered once per set of processes a caller may see.
- ``execute.py``: Execute, synchronous or asynchronous, both versions.
- ``job_control.py``: the WPS 2.0 GetStatus, GetResult and Dismiss.
- ``downloads.py``: what 1.0.0 documents link to: the stored status document and output files.
"""
