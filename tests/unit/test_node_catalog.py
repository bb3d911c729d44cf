"""noded.pipeline(5) lists every built-in node from the classes themselves: no drift."""

from __future__ import annotations

import tomllib

import msgspec
import pytest

from noded.contract.registry import NODES
from noded.errors import ParamError
from noded.nodes import catalog
from noded.nodes.params import REQUIRED, Param
from noded.pipeline.schema import NodeDoc


def test_the_manual_section_is_the_generated_one() -> None:
    page = catalog.PAGE.read_text()
    assert catalog.current(page) == catalog.section(), "run: python -m noded.nodes.catalog --write"


def test_every_node_users_run_is_documented_with_params_and_an_example() -> None:
    text = catalog.section()
    classes = catalog.node_classes()
    assert set(classes) == set(NODES)
    for name, cls in classes.items():
        assert f".SS {catalog.esc(name)}" in text
        params = cls.PARAMS  # type: ignore[attr-defined]
        assert params and all(isinstance(p, Param) and p.help.strip() for p in params.values()), name
        for pname in params:
            assert f"\\fB{catalog.esc(pname)}\\fR" in text, (name, pname)


@pytest.mark.parametrize("name", sorted(NODES))
def test_each_example_is_accepted_by_the_node_itself(name: str) -> None:
    """The example's params pass the node's own check, which uses the same PARAMS."""
    cls = catalog.node_classes()[name]
    doc = tomllib.loads(f'id = "{name}"\n' + cls.EXAMPLE)  # type: ignore[attr-defined]
    assert doc["class"] == name
    msgspec.convert(doc, NodeDoc)  # a valid [[nodes]] table: no unknown keys, right types
    params = doc.get("params", {})
    assert set(params) <= set(cls.PARAMS)  # type: ignore[attr-defined]
    node = cls(node_id=name, params=params)
    assert node.node_id == name
    with pytest.raises(ParamError, match="unknown params"):
        cls(node_id=name, params={**params, "no_such_param": 1})
    required = [p for p, spec in cls.PARAMS.items() if spec.default is REQUIRED]  # type: ignore[attr-defined]
    for p in required:
        with pytest.raises(ParamError, match=p):
            cls(node_id=name, params={k: v for k, v in params.items() if k != p})
