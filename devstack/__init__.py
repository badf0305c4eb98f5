"""Starting the local stack (Temporal dev server, worker, gateway) as processes.

Used by `make up` and by the test suite, so both start the parts the same way.
"""
