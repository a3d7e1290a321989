"""``PanelSheet``: the panel's own style sheet (``static/panel.css``), as a widget that shows nothing.

Stock ipywidgets carry no CSS; an anywidget does, and anywidget adds its
sheet to the page once per widget class, from the widget's first view.
The panel's status line, hint and History entries are stock widgets, so
their look travels with this one, which sits in the panel and takes no room
(``static/sheet.js`` hides its element).
"""

from __future__ import annotations

import anywidget

from .assets import css, esm

__all__ = ["PanelSheet"]


class PanelSheet(anywidget.AnyWidget):
    """``static/panel.css`` on the page while the panel shows."""

    _esm = esm("sheet")
    _css = css("panel")
