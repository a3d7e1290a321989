"""What a person sees that needs no widget: untrusted text made safe, the saved side-by-side picture.

Importing this package tells core how its values look in a notebook
(``Results.picture``, ``Diff.picture``): core sits below and never imports it.
"""

from __future__ import annotations

from ..core.diff import Diff
from ..core.results import Results
from .diff import diff_html
from .table import results_bundle

Results.picture = results_bundle
Diff.picture = diff_html
