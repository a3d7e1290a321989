"""The package's version, in one place: the client's User-Agent and ``gridllm_nb.__version__``."""

__version__ = "0.1.0"
