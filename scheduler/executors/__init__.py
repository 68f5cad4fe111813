"""The places jobs run: one abstract executor (``base``), the local pool, Docker, and the batch systems.

Shaped after PSI/J: an executor submits, polls many jobs at once, cancels and re-attaches; systems that
share a way of working share a base (``batch/base.py``), so each system's own module holds little more
than its vocabulary. The dispatcher builds executors only through ``registry``, which imports a class
when it is first needed. Executors speak no HTTP and do not import each other (``make lint`` checks both).
"""
