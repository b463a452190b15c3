"""Write docs/api.md, the reference of tinyres's public names, from their docstrings.

    python docs/make_api.py            # rewrites docs/api.md

A name is public when its module exports it: listed in the module's ``__all__``, or (for the
packages whose ``__init__`` imports their names) imported there. For every name: its signature
and the first paragraph of its docstring; for a class, also its public methods.
"""
import importlib
import inspect
import sys
from pathlib import Path

import numpy

OUT = Path(__file__).resolve().parent / "api.md"

# (module, names or None for its __all__ / everything it defines or imports, what it is)
SECTIONS = [
    ("tinyres", ["set_backend", "get_backend", "get_array_module", "tensor", "Tensor",
                 "no_grad", "is_grad_enabled", "Function", "gradcheck", "GradcheckError",
                 "manual_seed", "save", "load", "summary", "reference_kernels", "cat",
                 "concatenate", "stack", "exp", "log", "matmul", "pad", "reshape", "transpose",
                 "permute", "flatten", "unsqueeze", "squeeze", "sum", "mean", "max", "min",
                 "argmax", "argmin", "var", "std", "clone"],
     "The names most programs need, importable from the package itself. A Tensor also takes "
     "the operators `+ - * / ** @`, indexing `x[...]` (slices, strides, integer and boolean "
     "arrays) and comparisons `< <= > >=` (masks, outside the graph); they are the ops of "
     "`tinyres.ops`."),
    ("tinyres.backend", ["BACKENDS", "set_backend", "get_backend", "get_array_module",
                         "device_of", "to_device", "array_module", "require_cupy",
                         "BackendError"],
     "Floor 1: where arrays live (numpy, cupy, cudasim, leakproof)."),
    ("tinyres.dispatch", ["set_kernels", "get_kernels", "reference_kernels",
                          "fast_kernels_available", "set_num_threads", "get_num_threads",
                          "kernel_for", "fast_twin"],
     "Floor 2: the one door from a readable op to its fast twin in `kernels/`, and the fast "
     "path's knobs (`tinyres.set_num_threads` / `tinyres.get_num_threads` are these)."),
    ("tinyres.creation", ["zeros", "ones", "full", "arange", "randn", "rand", "randint",
                          "zeros_like", "ones_like", "full_like", "randn_like", "rand_like",
                          "from_numpy"],
     "Floor 3: making tensors with PyTorch's names (importable from `tinyres`)."),
    ("tinyres.autograd", ["Function", "no_grad", "is_grad_enabled", "layer_scope",
                          "current_layer"],
     "Floor 3: one differentiable op, a node of the graph."),
    ("tinyres.ops", ["add", "sub", "mul", "div", "neg", "exp", "log", "matmul", "reshape",
                     "transpose", "permute", "pad", "cat", "concatenate", "stack", "flatten",
                     "unsqueeze", "squeeze", "expand", "repeat", "sum", "mean", "max", "min",
                     "argmax", "argmin", "var", "std", "to", "clone", "add_", "sub_", "mul_",
                     "div_", "fill_", "zero_", "copy_", "unbroadcast", "Add", "Sub", "Mul", "Div",
                     "Neg", "Pow", "Exp", "Log", "MatMul", "Sum", "Mean", "Max", "Min",
                     "Reshape", "Permute", "Expand", "Repeat", "GetItem", "Pad", "Concatenate",
                     "Cast", "ValuesIndices"],
     "Floor 3: the basic differentiable ops (also Tensor operators and methods)."),
    ("tinyres.gradcheck", ["gradcheck", "GradcheckError", "GradcheckReport"],
     "Floor 3: backward against central differences."),
    ("tinyres.graph", ["to_dot", "render", "draw", "walk", "graphviz_available"],
     "Floor 3: the computational graph as DOT text and as an image."),
    ("tinyres.plotting", ["off_screen_figure"],
     "Figures drawn off screen (a matplotlib Figure with its own Agg canvas), never switching "
     "the user's backend."),
    ("tinyres.functional", None, "Floor 4: the layers as differentiable functions."),
    ("tinyres.nn", None, "Floor 5: modules that own their parameters."),
    ("tinyres.nn.functional", None, "The functional floor under PyTorch's name."),
    ("tinyres.nn.init", ["manual_seed", "get_rng_state", "set_rng_state", "calculate_gain",
                         "fan_in_and_fan_out", "kaiming_normal_", "kaiming_uniform_",
                         "xavier_normal_", "xavier_uniform_", "normal_", "uniform_",
                         "constant_", "ones_", "zeros_", "default_layer_init_"],
     "Floor 5: initialisers (in place, from tinyres's seeded generator)."),
    ("tinyres.models", None, "Floor 6: the networks, by name."),
    ("tinyres.models.views", ["gradient_norms", "compare_gradient_norms", "block_outputs",
                              "format_norms"],
     "Floor 6: looking inside a network (activations, gradient norms)."),
    ("tinyres.optim", None, "Optimizers and learning-rate schedules."),
    ("tinyres.data", None, "CIFAR-10, augmentation, the loader."),
    ("tinyres.train", None, "Floor 7: training and evaluation."),
    ("tinyres.distributed", None, "Floor 7: data-parallel training on MPI."),
    ("tinyres.serialization", ["save", "load"], "Checkpoints and weight files."),
    ("tinyres.course.copier", ["make", "find_leaks"],
     "The course: student copies (`tinyres assignment make`)."),
    ("tinyres.course.grader", ["grade", "format_report", "gradescope_results", "GradeSheet"],
     "The course: the autograder (`tinyres assignment grade`)."),
    ("tinyres.course.checks.registry", ["REGISTRY", "register"],
     "The course: the cases of `tinyres gradcheck` (importing `tinyres.course.checks` "
     "registers them all)."),
]


def first_paragraph(obj):
    doc = inspect.getdoc(obj) or ""
    paragraph = doc.split("\n\n")[0].strip()
    return " ".join(line.strip() for line in paragraph.splitlines())


def signature(obj, method=False):
    """The signature as text; for a method, without its first parameter (self)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    if method:
        sig = sig.replace(parameters=list(sig.parameters.values())[1:])
    return str(sig)


def public_names(module):
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [name for name, value in vars(module).items()
            if not name.startswith("_") and not inspect.ismodule(value)
            and (inspect.isclass(value) or inspect.isfunction(value))]


def describe(module_name, name, value):
    lines = []
    if inspect.isclass(value):
        init = signature(value)
        lines.append(f"### `{name}{init}`  (class)\n")
        lines.append(first_paragraph(value) + "\n")
        methods = [(m, f) for m, f in vars(value).items()
                   if not m.startswith("_") and (inspect.isfunction(f) or isinstance(f, property))]
        for m, f in methods:
            if isinstance(f, property):
                lines.append(f"- `.{m}` (property) {first_paragraph(f)}".rstrip())
            else:
                lines.append(f"- `.{m}{signature(f, method=True)}` {first_paragraph(f)}".rstrip())
        if methods:
            lines.append("")
    elif callable(value):
        lines.append(f"### `{name}{signature(value)}`\n")
        lines.append(first_paragraph(value) + "\n")
    else:
        shown = repr(value) if len(repr(value)) < 90 else type(value).__name__
        lines.append(f"### `{name}`\n")
        lines.append(f"`{shown}`\n")
    return lines


def main():
    numpy.set_printoptions(threshold=10)
    out = ["# API reference", "",
           "The public names of tinyres, module by module: signature and the first paragraph of "
           "each docstring (read the source for the rest; every file is written to be read). "
           "Generated by `docs/make_api.py`; rerun it after changing a public name.", "",
           "The command line: `tinyres train | eval | gradcheck | info | bench | assignment` "
           "(`tinyres COMMAND --help`).", ""]
    out.append("## Contents\n")
    for module_name, _, what in SECTIONS:
        anchor = module_name.replace(".", "")
        out.append(f"- [`{module_name}`](#{anchor}): {what}")
    out.append("")
    for module_name, names, what in SECTIONS:
        try:
            module = importlib.import_module(module_name)
        except Exception as err:                           # e.g. an optional dependency
            out += [f"## {module_name}", "", f"(not importable here: {err})", ""]
            continue
        out += [f"## {module_name}", "", what, ""]
        for name in names or public_names(module):
            if not hasattr(module, name):
                print(f"warning: {module_name}.{name} does not exist", file=sys.stderr)
                continue
            out += describe(module_name, name, getattr(module, name))
    OUT.write_text("\n".join(out).rstrip() + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
