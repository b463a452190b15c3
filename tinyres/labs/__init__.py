"""Floor 8: labs — the paper's findings set against tinyres's own runs, one command each.

    tinyres lab degradation     Fig. 6: plain nets and ResNets of 20 and 56 layers (--paper:
                                the paper's own recipe on the full CIFAR-10)
    tinyres lab responses       Fig. 7: the std of every 3x3 layer's response (needs degradation)
    tinyres lab depth           Table 6: ResNet-20/32/44/56 on the subset (error, size, cost, time)
    tinyres lab bottleneck      the basic and the bottleneck block of similar cost, side by side
    tinyres lab features        a trained ResNet-20's first-layer filters and its feature maps

Each writes to runs/lab-NAME/: every curve or number as CSV, the figure as PNG, report.txt.
`--smoke` runs a tiny version (seconds, for CI); the training labs resume where they stopped;
`--report-only` (degradation, responses) reports the runs as far as they have got.
docs/labs.md shows the committed results, beside the paper's figures and tables.
"""
import importlib

LABS = {
    "degradation": "Fig. 6: plain and residual nets of 20 and 56 layers, training and test error",
    "responses": "Fig. 7: std of each 3x3 layer's response, plain against residual",
    "depth": "Table 6: ResNet-20/32/44/56 test error, parameters, multiply-adds, s/epoch",
    "bottleneck": "basic vs bottleneck block: parameters, multiply-adds, time, shortcut gradient",
    "features": "first-layer filters and feature maps of a trained ResNet-20",
}


def get_lab(name):
    """The lab's module (each has run(options, out))."""
    if name not in LABS:
        raise ValueError(f"unknown lab {name!r}; choose one of: {', '.join(LABS)}")
    return importlib.import_module(f"tinyres.labs.{name}")
