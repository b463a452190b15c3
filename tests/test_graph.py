"""tinyres.graph: the computational graph as DOT text, as an image, and in backward's order."""
import re

import numpy
import pytest

import tinyres
from tinyres import graph, nn


def leaf(rng, *shape, name=None):
    t = tinyres.tensor(rng.standard_normal(shape), requires_grad=True)
    t.name = name
    return t


def parse(dot):
    """(nodes {id: label}, edges [(a, b)]) of to_dot's output, checking its structure."""
    lines = dot.strip().split("\n")
    assert lines[0] == "digraph tinyres {" and lines[-1] == "}"
    nodes = dict(re.findall(r'^\s*(\w+) \[label="((?:[^"\\]|\\.)*)"', dot, re.M))
    edges = re.findall(r"^\s*(\w+) -> (\w+);$", dot, re.M)
    for a, b in edges:
        assert a in nodes and b in nodes, f"edge {a} -> {b} to an undeclared node"
    return nodes, edges


def test_a_small_graph_has_every_op_tensor_and_edge(rng):
    x, w, b = leaf(rng, 2, 3, name="x"), leaf(rng, 3, 4, name="W"), leaf(rng, 4, name="b")
    y = (x @ w + b).sum()
    nodes, edges = parse(graph.to_dot(y))
    ops = sorted(label.split("\\n")[0] for key, label in nodes.items() if key.startswith("f"))
    assert ops == ["Add", "MatMul", "Sum"]
    labels = set(nodes.values())
    assert {"x\\n(2, 3) float64", "W\\n(3, 4) float64", "b\\n(4,) float64"} <= labels
    assert len([k for k in nodes if k.startswith("t")]) == 6    # x, W, b, x@W, +b, the sum
    assert len(edges) == (2 + 1) + (2 + 1) + (1 + 1)            # inputs -> op -> output
    assert 'fillcolor=orange' in graph.to_dot(y)                 # leaves that want a gradient


def test_a_tensor_used_twice_sends_two_arrows(rng):
    x = leaf(rng, 3, name="x")
    nodes, edges = parse(graph.to_dot(x * x))
    x_id = next(k for k, label in nodes.items() if label.startswith("x"))
    mul_id = next(k for k, label in nodes.items() if label == "Mul")
    assert edges.count((x_id, mul_id)) == 2


def test_settings_names_and_constants_are_shown(rng):
    layer = nn.Linear(3, 2).to(dtype=numpy.float64)
    x = tinyres.tensor(rng.standard_normal((4, 3)))             # a constant: no gradient
    out = layer(x).sum(dim=1, keepdim=True) ** 2
    dot = graph.to_dot(out, names=dict(layer.named_parameters()), verbose=False)
    nodes, _ = parse(dot)
    labels = set(nodes.values())
    assert {"weight", "bias"} <= labels                          # named: no shape (verbose off)
    assert "Sum\\ndim=1\\nkeepdim=True" in labels
    assert "Pow\\nexponent=2" in labels
    assert "(4, 3) float64" in labels                            # unnamed: its shape anyway
    assert "fillcolor=lightgrey" in dot                          # the constant input


def test_quotes_in_names_are_escaped(rng):
    x = leaf(rng, 2, name='say "hi"')
    dot = graph.to_dot(x * 2.0)
    assert 'label="say \\"hi\\"\\n(2,) float64"' in dot
    parse(dot)


def test_a_leaf_alone_and_a_freed_graph(rng):
    x = leaf(rng, 2, name="x")
    nodes, edges = parse(graph.to_dot(x))
    assert list(nodes.values()) == ["x\\n(2,) float64"] and edges == []
    y = (x * x).sum()
    y.backward()                                                  # frees the graph
    nodes, edges = parse(graph.to_dot(y))
    assert any("freed by backward" in label for label in nodes.values())
    with pytest.raises(TypeError, match="expected a Tensor"):
        graph.to_dot(numpy.ones(2))


def test_walk_visits_each_function_after_all_its_consumers(rng):
    x = leaf(rng, 3)
    a = x.exp()
    b = a * x
    y = (a + b).sum()                                            # a feeds Mul and Add
    order = graph.walk(y)
    assert [f.name for f in order][0] == "Sum"
    position = {id(f): i for i, f in enumerate(order)}
    for f in order:
        for edge in f.input_edges:
            if edge.creator is not None:
                assert position[id(edge.creator)] > position[id(f)]
    assert len(order) == 4                                       # Exp, Mul, Add, Sum


def test_render_writes_dot_and_png_without_graphviz(rng, tmp_path, monkeypatch):
    monkeypatch.setattr(graph, "graphviz_available", lambda: False)
    x, w = leaf(rng, 2, 3, name="x"), leaf(rng, 3, 2, name="W")
    image = graph.render((x @ w).sum(), tmp_path / "sub" / "g")
    assert image == tmp_path / "sub" / "g.png"
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "sub" / "g.dot").read_text().startswith("digraph tinyres {")


@pytest.mark.skipif(not graph.graphviz_available(), reason="Graphviz's dot is not installed")
def test_render_with_graphviz(rng, tmp_path):
    x = leaf(rng, 2, name="x")
    image = graph.render((x * x).sum(), tmp_path / "g.svg")
    assert b"<svg" in image.read_bytes()


def test_draw_refuses_a_graph_too_big_to_read(rng, tmp_path):
    x = leaf(rng, 2)
    y = x
    for _ in range(30):
        y = y * 1.5
    with pytest.raises(ValueError, match="install Graphviz"):
        graph.draw(y, tmp_path / "big.png", max_nodes=40)
