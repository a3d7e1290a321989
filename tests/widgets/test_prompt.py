"""``PromptBox``: its value syncs as a textarea's does; Ctrl+Enter is a message the kernel acts on."""

from __future__ import annotations

from gridllm_nb.widgets.prompt import PromptBox


def browser_sends(widget, data: dict) -> None:
    """A comm message from the front end, as ipywidgets receives it."""
    widget._handle_msg({"content": {"data": data}, "buffers": []})


def test_a_submit_brings_its_text_and_calls_the_handlers() -> None:
    box = PromptBox("start")
    submitted: list[str] = []
    box.on_submit(lambda b: submitted.append(b.value))
    browser_sends(box, {"method": "update", "state": {"value": "typed"}})
    browser_sends(box, {"method": "custom", "content": {"submit": "typed"}})
    browser_sends(box, {"method": "custom", "content": {"submit": "typed again"}})  # not synced yet
    browser_sends(box, {"method": "custom", "content": {"other": 1}})  # not a submit: nothing
    box.submit()  # from Python
    assert submitted == ["typed", "typed again", "typed again"] and box.value == "typed again"


def test_ctrl_enter_is_wired_in_the_front_end() -> None:
    esm = PromptBox._esm
    assert '"keydown"' in esm and "e.ctrlKey || e.metaKey" in esm and 'e.key !== "Enter"' in esm
    assert "preventDefault" in esm and "stopPropagation" in esm  # not the notebook's run-cell
    assert "model.send({ submit: ta.value })" in esm
    assert "innerHTML" not in esm
    # the box fills its row exactly: the right border is inside the panel
    assert "box-sizing:border-box;width:100%" in PromptBox._css
