"""What a person sees that needs no widget: untrusted text made safe, the saved pictures, text streams.

Core sits below and never imports this layer; the package root gives core
its pictures (``core.hooks``: ``picture``, ``diff_picture``) from here.
"""
