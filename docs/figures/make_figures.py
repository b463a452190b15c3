"""Draw the figures of docs/index.md, docs/autograd.md and the assignment handouts.

    python docs/figures/make_figures.py            # all of them, into docs/figures/
    python docs/figures/make_figures.py gradcheck  # only those whose name contains 'gradcheck'

Every figure is computed by tinyres itself, here, from fixed seeds: rerun this script after
changing the code it shows, and the figures follow.
"""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy

import tinyres
from tinyres.plotting import off_screen_figure

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent.parent / "examples"


def autograd_graph():
    """The graph of example 1 (z = x @ W + b, y = z * z, L = mean(y)), drawn by that example:
    it runs, and the graph.png and graph.dot it writes are copied here."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, str(EXAMPLES / "01_autograd.py"), "--out", out],
                       check=True, capture_output=True)
        for suffix in (".png", ".dot"):
            shutil.copyfile(Path(out) / f"graph{suffix}", HERE / f"autograd-graph{suffix}")
    return HERE / "autograd-graph.png"


def gradcheck_eps():
    """Error of forward and central differences against the exact derivative, over eps, in
    float32 and float64: truncation error falls with eps, round-off error grows as it falls."""
    rng = numpy.random.default_rng(0)
    x0 = rng.standard_normal(5)
    r = rng.standard_normal(5)
    eps_values = numpy.logspace(-12, -1, 45)
    fig = off_screen_figure(figsize=(6.4, 4))
    ax = fig.subplots()
    for dtype, colour in ((numpy.float32, "tab:orange"), (numpy.float64, "tab:blue")):
        x = tinyres.tensor(x0.astype(dtype), requires_grad=True)
        loss = ((x.exp() * x) * tinyres.tensor(r.astype(dtype))).sum()   # L = <x e^x, r>
        loss.backward()
        exact = float(((1 + x0) * numpy.exp(x0) * r)[0])                   # dL/dx_0, exactly

        def L(value):
            v = x0.astype(dtype).copy()
            v[0] = value
            t = tinyres.tensor(v)
            return float(((t.exp() * t) * tinyres.tensor(r.astype(dtype))).sum().item())
        central, forward = [], []
        for eps in eps_values:
            e = dtype(eps)
            central.append(abs((L(dtype(x0[0]) + e) - L(dtype(x0[0]) - e)) / (2 * float(e))
                               - exact) / abs(exact))
            forward.append(abs((L(dtype(x0[0]) + e) - L(dtype(x0[0]))) / float(e) - exact)
                           / abs(exact))
        name = numpy.dtype(dtype).name
        ax.loglog(eps_values, numpy.maximum(central, 1e-17), "-", color=colour,
                  label=f"central, {name}")
        ax.loglog(eps_values, numpy.maximum(forward, 1e-17), ":", color=colour,
                  label=f"forward, {name}")
    ax.axvline(1e-6, color="0.5", linestyle="--", linewidth=1)
    ax.text(1.2e-6, 3e-15, "gradcheck's eps = 1e-6", fontsize=8, color="0.3")
    ax.set_xlabel("eps")
    ax.set_ylabel("relative error of the numerical derivative")
    ax.set_ylim(1e-16, 10)
    ax.set_title("finite differences: truncation (right) vs round-off (left)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = HERE / "gradcheck-eps.png"
    fig.savefig(path, dpi=100)
    return path


def gradient_norms():
    """||dL/dW|| per layer of plain-56 and ResNet-56 at initialisation, on 32 sample images."""
    from tinyres.data import DataLoader, bundled_sample, cifar_test_transform
    from tinyres.models import plain56, resnet56
    from tinyres.models.views import gradient_norms as norms_of
    images, labels = next(iter(DataLoader(bundled_sample(True), 32, shuffle=True, seed=0,
                                          transform=cifar_test_transform())))
    fig = off_screen_figure(figsize=(7, 3.6))
    ax = fig.subplots()
    for name, make, style in (("plain56", plain56, "--"), ("resnet56", resnet56, "-")):
        tinyres.manual_seed(0)
        norms = norms_of(make(), images, tinyres.tensor(labels))
        convs = {name: v for name, v in norms.items() if name != "fc"}
        stage = {k: [v for name, v in convs.items() if name.startswith(k)]
                 for k in ("layer1", "layer3")}
        print(f"{name} on 32 images: {len(convs)} convs, ||dL/dW|| from "
              f"{min(convs.values()):.3g} to {max(convs.values()):.3g}; conv1 "
              f"{convs['conv1']:.3g}, layer1 {min(stage['layer1']):.3g}-"
              f"{max(stage['layer1']):.3g}, layer3 {min(stage['layer3']):.3g}-"
              f"{max(stage['layer3']):.3g}")
        ax.semilogy(range(1, len(norms) + 1), list(norms.values()), style, marker=".",
                    label=name)
    ax.set_xlabel("layer (conv1, layer1.0.conv1, ..., layer3.8.conv2, fc)")
    ax.set_ylabel("||dL/dW||")
    ax.set_title("gradient norm per layer at initialisation (32 CIFAR-10 images)")
    ax.legend()
    fig.tight_layout()
    path = HERE / "gradient-norms-at-init.png"
    fig.savefig(path, dpi=100)
    return path


FIGURES = [autograd_graph, gradcheck_eps, gradient_norms]

if __name__ == "__main__":
    wanted = sys.argv[1:]
    for make in FIGURES:
        if not wanted or any(w in make.__name__ for w in wanted):
            print(f"{make.__name__}: {make()}")
