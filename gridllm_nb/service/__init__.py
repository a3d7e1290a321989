"""The embedded local jobs service: the remotejobs v2 API served on this machine.

It exists so that users without a GridRepublic token, Binder demos and the
test-suite all talk to the same API with real inference. The layers, bottom up:
``registry`` (tag -> backend settings), ``backends`` (tokens from a model) and
``runners`` (llama.cpp in supervised child processes), ``store`` (SQLite
persistence), ``manager`` (queue, workers, deadlines, cancel), ``http`` (the
API), ``server``/``launcher`` (processes; ``state`` and ``exits`` beside them).

It imports nothing from the client side: only ``gridllm_nb.config``'s shared
constants, ``errors`` and ``private_files``. Import the heavy parts (FastAPI,
llama.cpp) from their modules, not from this package.
"""
