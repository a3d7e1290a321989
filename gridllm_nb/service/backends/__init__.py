"""Inference backends: one small class per engine, each with one method, ``generate``.

``base`` holds what they share. Imports of the engines (llama.cpp, httpx)
happen inside the backend modules, so the registry and the app load without
them. llama.cpp tags are served by ``runners.RunnerBackend``: the engine runs
in a supervised child process, so a crash in native code fails one job
instead of the whole service. Which backend serves a tag is decided by
``..backend_factory``, above both this package and the runners, which import
``base``.
"""
