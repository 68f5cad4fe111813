"""Process model and built-in processes.

A process is declared once (:class:`processes.model.Process`) and is the same object whichever executor
runs it: the web worker for synchronous requests, a forked child of the dispatcher for the local pool, or
the launcher on a compute node.
"""
