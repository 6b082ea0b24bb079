"""The worker: runs dispatched executions as local processes.

``params`` formats parameters and builds the stdin protocol, ``process`` runs one action process
(process group, bounded capture, live logs, redaction, timeout and cancel), ``output`` turns the
outcome into the stored ``execution.result``.
"""
