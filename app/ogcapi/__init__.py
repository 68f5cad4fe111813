"""OGC API - Processes - Part 1: Core 1.0 (OGC 18-062r2), the service's second protocol binding.

A sibling of ``app/wps/`` over the same job service (``scheduler/service.py``): one module per job.

- ``views.py``: the blueprint's routes (the root, /conformance, /api, /processes, /jobs): who asks,
  the job service call, the rendering; every error as an RFC 7807 problem.
- ``negotiation.py``: the encoding of a response (``f``, then Accept; JSON or HTML), by resource name.
- ``html.py``, ``pages.py``, ``templates/``, ``static/``: the HTML encoding, the job monitor's pages.
- ``landing.py``: the landing page and the conformance classes declared.
- ``processes.py``, ``schemas.py``: process summaries and descriptions, the JSON Schema of each input.
- ``execute.py``: an execute request read into what the WPS parsers produce, the execution mode.
- ``jobs.py``: statusInfo, the job list's filters and keyset pages.
- ``results.py``: the results document and a raw output.
- ``errors.py``: problem documents and the job service's errors mapped to them.
- ``openapi.py``: the OpenAPI 3.0 document of what is served.
- ``urls.py``: every path and link.

Each resource is rendered as a plain dict by a small pure function, so another encoding (the HTML job
monitor) reuses it.
"""
