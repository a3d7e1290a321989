"""anywidgets: what a person sees live in a notebook. Each owns its front-end code in ``static/``."""
