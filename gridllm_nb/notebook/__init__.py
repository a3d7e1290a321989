"""The notebook front ends: the ``%%gridllm`` magic, the panel and the web page."""
