"""Job execution: the job table, its lifecycle, the executors and the dispatcher that drives them.

Nothing here imports the web application, so the dispatcher and the launcher on compute nodes run
without it.
"""
