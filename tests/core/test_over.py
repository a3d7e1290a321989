"""%%gridllm --over: one prompt per element, each interpolated once."""

from __future__ import annotations

import pytest

from gridllm_nb.core.over import over_prompts
from gridllm_nb.errors import ConfigError


def test_over_prompts_interpolates_each_element_once() -> None:
    ns = {"secret": "XYZ", "style": "briefly"}
    items = ["Paris", "{secret}", {"title": "Dune", "year": 1965}]
    prompts = over_prompts("Say {style}: {item} {title}", items, ns)
    assert prompts[0] == "Say briefly: Paris {title}"
    assert prompts[1] == "Say briefly: {secret} {title}"  # an element is sent as written, never expanded again
    assert prompts[2].endswith("{'title': 'Dune', 'year': 1965} Dune")
    assert over_prompts("{item}", {"x": 1, "y": 2}, {}) == {"x": "1", "y": "2"}
    assert over_prompts("{item}!", [1, 2], {}, substitute=False) == ["{item}!", "{item}!"]
    with pytest.raises(ConfigError, match="not a string"):
        over_prompts("{item}", "abc", {})
    with pytest.raises(ConfigError, match="needs a list"):
        over_prompts("{item}", 42, {})


def test_over_prompts_goes_over_the_rows_of_a_dataframe() -> None:
    import pandas as pd

    frame = pd.DataFrame({"city": ["Paris", "Rome"], "n": [1, 2]})
    assert over_prompts("{n}. {city}", frame, {}) == ["1. Paris", "2. Rome"]
