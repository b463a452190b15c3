"""Floor 3: the computational graph, made visible.

Every op call records a node (tinyres.autograd): the output Tensor keeps ``.creator``, the
Function that made it, and the Function keeps ``.input_edges``, where each input's gradient goes
(the Function that made that input and which of its outputs it was, or the leaf itself). So from
a loss we can walk back to every leaf, exactly as ``loss.backward()`` does, and write down what
we pass:

    y = (x * w + b).sum()
    print(tinyres.graph.to_dot(y))          # Graphviz DOT text: paste into any DOT viewer
    tinyres.graph.render(y, "graph.png")    # graph.dot beside it, and graph.png

Two kinds of nodes, as in DeZero's pictures:

    ellipse   a Tensor: its name (if it has one), shape and dtype; leaves that want a gradient
              (parameters) are orange, constants grey, the op outputs white
    box       a Function (Add, MatMul, Conv2d, ...), with its settings (axis, stride, ...)

and an arrow from every input to its Function and from the Function to its output. A tensor used
twice has two arrows leaving it: in backward its gradient is the sum of what both send back.
The graph does not keep intermediate tensors alive (only what backward saved): one the program
has dropped is drawn from its shape and dtype alone, without a name.

``render`` runs the Graphviz ``dot`` program when it is installed; without it, it draws the same
graph with matplotlib (plain, layered left to right; fine for the small graphs of a lesson).

Draw the graph *before* ``backward()``: backward frees each node's saved arrays and links as it
passes (unless ``retain_graph=True``), and a freed node is drawn as a dead end.
"""
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

from tinyres.tensor import Tensor

# settings a Function may hold that are worth showing in its box
_SETTINGS = ("exponent", "dim", "keepdim", "shape", "dims", "stride", "padding", "kernel_size",
             "pad_width", "training", "momentum", "eps", "p")


def walk(output):
    """The Functions of the graph that made `output`, in the order backward() calls them:
    each after every Function that consumes its outputs (highest generation first)."""
    functions, stack, seen = [], [output.creator] if output.creator else [], set()
    while stack:
        function = stack.pop()
        if id(function) in seen:
            continue
        seen.add(id(function))
        functions.append(function)
        for edge in getattr(function, "input_edges", ()):
            if edge.creator is not None:
                stack.append(edge.creator)
    # ties (equal generation) keep discovery order: any order among them is a valid walk
    order = {id(f): i for i, f in enumerate(functions)}
    return sorted(functions, key=lambda f: (-getattr(f, "generation", 0), order[id(f)]))


class _TensorNode(NamedTuple):
    """A tensor as drawn: the Tensor itself where it is still alive, else what its creator
    remembers of it (shape and dtype)."""
    shape: tuple
    dtype: object
    name: "str | None"
    kind: str                  # "leaf", "constant" or "result"


def _graph(output, names):
    """(tensors, functions, edges): what to draw. Nodes are keyed by what identifies them:
    ('t', id) for a tensor held as itself (a leaf, or the output), ('o', id(function), index) for
    output `index` of a Function, ('f', id) for a Function; edges are (from_key, to_key) pairs."""
    label_of = {id(t): n for n, t in (names or {}).items()}
    tensors, functions, edges = {}, {}, []

    def key_of(t):
        return ("o", id(t.creator), t.output_index) if t.creator is not None else ("t", id(t))

    def add_tensor(key, t, spec=None):
        if t is None:                          # dropped by the program: only its spec is known
            tensors.setdefault(key, _TensorNode(*spec, None, "result"))
        else:
            tensors.setdefault(key, _TensorNode(t.shape, t.dtype, label_of.get(id(t), t.name),
                                                _tensor_kind(t)))

    add_tensor(key_of(output), output)
    for function in walk(output):
        functions[id(function)] = function
        for index, spec in enumerate(getattr(function, "output_specs", ())):
            key = ("o", id(function), index)
            add_tensor(key, function.outputs[index](), spec)
            edges.append((("f", id(function)), key))
        for edge in getattr(function, "input_edges", ()):
            if edge.creator is None:
                key = ("t", id(edge.leaf))
                add_tensor(key, edge.leaf)
            else:
                key = ("o", id(edge.creator), edge.index)
            edges.append((key, ("f", id(function))))
    # the output itself, even when its creator's output links are gone
    if output.creator is not None and (("f", id(output.creator)), key_of(output)) not in edges:
        edges.append((("f", id(output.creator)), key_of(output)))
    return tensors, functions, edges


def _tensor_label(node, verbose):
    parts = [node.name] if node.name else []
    if verbose or not parts:
        parts.append(f"{tuple(node.shape)} {node.dtype}")
    return "\n".join(parts)


def _function_label(function):
    if function.released:
        return f"{function.name}\n(freed by backward)"
    shown = [key for key in _SETTINGS if key in vars(function)
             and getattr(function, key) is not None and getattr(function, key) is not False]
    if "keepdim" in vars(function):            # Sum / Mean / Max: `dims` is `dim`, resolved
        shown = [key for key in shown if key != "dims"]
    settings = [f"{key}={getattr(function, key)!r}" for key in shown]
    layer = [f"[{function.layer}]"] if function.layer else []     # "[Conv2d layer1.0.conv1]"
    return "\n".join([function.name] + layer + settings)


def _tensor_kind(t):
    if t.creator is not None:
        return "result"
    return "leaf" if t.requires_grad else "constant"


_FILL = {"leaf": "orange", "constant": "lightgrey", "result": "white", "function": "lightblue"}


def _quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(output, names=None, verbose=True):
    """Graphviz DOT text of the graph that computed `output` (a Tensor).

    names: optional {name: Tensor}, e.g. ``dict(model.named_parameters())``, to label tensors
    (a tensor's own ``.name`` is used otherwise). verbose: show each tensor's shape and dtype
    (always shown for a tensor without a name).
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"to_dot: expected a Tensor, got {type(output).__name__}")
    tensors, functions, edges = _graph(output, names)
    # short node names in the order met: t0 is the output, f0 the op that made it, ...
    ids = {key: f"t{i}" for i, key in enumerate(tensors)}
    ids.update({("f", k): f"f{i}" for i, k in enumerate(functions)})
    lines = ["digraph tinyres {", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=10];']
    for key, node in tensors.items():
        lines.append(f"  {ids[key]} [label={_quote(_tensor_label(node, verbose))}, "
                     f"shape=ellipse, style=filled, fillcolor={_FILL[node.kind]}];")
    for key, function in functions.items():
        lines.append(f"  {ids['f', key]} [label={_quote(_function_label(function))}, shape=box, "
                     f"style=filled, fillcolor={_FILL['function']}];")
    for a, b in edges:
        lines.append(f"  {ids[a]} -> {ids[b]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(output, path, names=None, verbose=True):
    """Write the graph of `output` as `path` with suffix .dot and as an image at `path` (.png,
    or any format Graphviz knows: .svg, .pdf). Uses the ``dot`` program when it is installed,
    else matplotlib (PNG only). Returns the image's Path."""
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    dot_text = to_dot(output, names, verbose)
    dot_path = path.with_suffix(".dot")
    dot_path.write_text(dot_text)
    if graphviz_available():
        subprocess.run(["dot", f"-T{path.suffix[1:]}", str(dot_path), "-o", str(path)],
                       check=True, capture_output=True, timeout=60)
    else:
        draw(output, path, names, verbose)
    return path


def graphviz_available():
    """Is the Graphviz ``dot`` program on the PATH?"""
    return shutil.which("dot") is not None


def draw(output, path, names=None, verbose=True, max_nodes=80):
    """Draw the graph with matplotlib (no Graphviz needed) into the image file `path`.

    The layout is plain: a node's column is the length of the longest path from a leaf to it,
    so data flows left to right, from the leaves to `output`.
    """
    from tinyres.plotting import off_screen_figure

    tensors, functions, edges = _graph(output, names)
    nodes = list(tensors) + [("f", k) for k in functions]
    if len(nodes) > max_nodes:
        raise ValueError(f"draw: the graph has {len(nodes)} nodes, more than max_nodes="
                         f"{max_nodes} can show legibly; install Graphviz (the `dot` program) "
                         f"and use render(), or view to_dot()'s text")
    parents = {node: [] for node in nodes}
    for a, b in edges:
        parents[b].append(a)
    column = {}

    def column_of(node):
        if node not in column:
            column[node] = 1 + max((column_of(p) for p in parents[node]), default=-1)
        return column[node]

    for node in nodes:
        column_of(node)
    children = {node: [b for a, b in edges if a == node] for node in nodes}
    for node in nodes:                         # a leaf sits just before its first consumer
        if not parents[node] and children[node]:
            column[node] = min(column[c] for c in children[node]) - 1
    by_column = {}
    for node in sorted(nodes, key=lambda n: column[n]):
        by_column.setdefault(column[node], []).append(node)
    position = {}
    for c in sorted(by_column):
        members = by_column[c]
        # rows ordered by where the node's inputs sit (fewer crossing arrows)
        members.sort(key=lambda n: sum(position[p][1] for p in parents[n] if p in position)
                     / max(1, sum(p in position for p in parents[n])), reverse=True)
        for row, node in enumerate(members):
            position[node] = (c, -(row - (len(members) - 1) / 2))

    width = 1.5 * (max(by_column) - min(by_column) + 1)
    height = 1.0 * max(len(m) for m in by_column.values()) + 0.6
    fig = off_screen_figure(figsize=(max(width, 4), max(height, 2)))
    ax = fig.subplots()
    label = {}
    for node in nodes:
        if node[0] == "f":
            text, fill, box = _function_label(functions[node[1]]), _FILL["function"], "square"
        else:
            tensor_node = tensors[node]
            text, fill, box = _tensor_label(tensor_node, verbose), _FILL[tensor_node.kind], "round"
        label[node] = ax.text(*position[node], text, ha="center", va="center", fontsize=8,
                              bbox=dict(boxstyle=f"{box},pad=0.4", facecolor=fill,
                                        edgecolor="0.3"))
    fig.canvas.draw()                         # size the boxes, so arrows can stop at their edges
    drawn = {}
    for a, b in edges:
        # a tensor used twice by one op (x * x) gets two arrows, bent apart
        repeat, copies = drawn.get((a, b), 0), edges.count((a, b))
        drawn[(a, b)] = repeat + 1
        bend = 0.0 if copies == 1 else 0.3 * (repeat - (copies - 1) / 2)
        ax.annotate("", xy=position[b], xytext=position[a],
                    arrowprops=dict(arrowstyle="-|>", color="0.3", shrinkA=2, shrinkB=2,
                                    connectionstyle=f"arc3,rad={bend}",
                                    patchA=label[a].get_bbox_patch(),
                                    patchB=label[b].get_bbox_patch()))
    xs = [p[0] for p in position.values()]
    ys = [p[1] for p in position.values()]
    ax.set_xlim(min(xs) - 0.7, max(xs) + 0.7)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)
