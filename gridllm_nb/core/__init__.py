"""A prompt × models -> Results: runs, grids, retry, attach, the history, the arena.

Every front end (the magic, the panel, the CLI, the Python API) is a view
over this layer; it reaches the embedded service only through ``local``.
"""
