"""What a person sees that needs no widget: untrusted text made safe, the saved side-by-side picture.

Importing this package tells core how its values look in a notebook
(``Results.picture``): core sits below and never imports it.
"""

from __future__ import annotations

from ..core.results import Results
from .table import results_bundle

Results.picture = results_bundle
