"""Floor 6: models — the networks of the papers, built from the nn layers, found by name.

    from tinyres import models
    model = models.get_model("resnet20")            # or models.resnet20(), models.vgg16()
    models.list_models()                            # every registered name
    tinyres.summary(model, (3, 32, 32))             # layers, shapes, parameters, multiply-adds

Read in this order: blocks.py (the residual block and its shortcut options), cifar_resnet.py
(section 4.2), imagenet_resnet.py (Table 1), summary.py (counting), views.py (activations and
gradient norms, to compare a plain net with a ResNet).

The registry: each family module ends with ``MODELS = {name: constructor}`` and is registered
here with one line. A constructor takes keyword arguments only (``num_classes=...`` and its
family's options), so ``get_model(name, num_classes=10)`` works for every name.
"""
import difflib

from tinyres.models.blocks import (SHORTCUT_OPTIONS, BasicBlock, Bottleneck, ResidualBlock,
                                   ZeroPadShortcut, he_init_, make_shortcut)
from tinyres.models import cifar_resnet as _cifar_resnet_family
from tinyres.models import imagenet_resnet as _imagenet_resnet_family
from tinyres.models import vgg as _vgg_family

MODELS = {}     # name -> constructor, in registration order
TRAINING_LR = {}    # name -> the initial learning rate `tinyres train` uses by default


def register_models(family, lr=0.1):
    """Add a family's {name: constructor} to the registry (a name may be registered only once),
    with the initial learning rate its CIFAR recipe starts from (the paper's 0.1 for ResNets)."""
    for name, constructor in family.items():
        if name in MODELS and MODELS[name] is not constructor:
            builder = MODELS[name]
            raise ValueError(f"model name {name!r} is already registered (by "
                             f"{builder.__module__}.{builder.__qualname__})")
        MODELS[name] = constructor
        TRAINING_LR[name] = lr


# One line per family:
register_models(_cifar_resnet_family.MODELS)
register_models(_imagenet_resnet_family.MODELS)
register_models(_vgg_family.MODELS, lr=_vgg_family.TRAINING_LR)


def list_models():
    """Every registered model name, in registration order."""
    return list(MODELS)


def get_model(name, **kwargs):
    """Build the model called `name` (``get_model("resnet56", num_classes=100)``)."""
    if name not in MODELS:
        close = difflib.get_close_matches(str(name), MODELS, n=3)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ValueError(f"unknown model {name!r}{hint}; valid names: {', '.join(MODELS)}")
    return MODELS[name](**kwargs)


# The constructors and classes, importable from tinyres.models. (Importing the functions
# cifar_resnet and imagenet_resnet makes those attribute names refer to the functions; the
# modules stay importable with `from tinyres.models.cifar_resnet import ...`.)
# As in torchvision, every registered name is a function here too: models.resnet20(),
# models.plain56(), models.vgg16_bn(num_classes=10), models.cifar_vgg11().
from tinyres.models.cifar_resnet import (CifarResNet, cifar_plain, cifar_resnet,  # noqa: E402
                                         plain8, plain14, plain20, plain32, plain44, plain56,
                                         plain110, resnet8, resnet14, resnet20, resnet32,
                                         resnet44, resnet56, resnet110, resnet1202)
from tinyres.models.imagenet_resnet import (ImageNetResNet, imagenet_resnet,  # noqa: E402
                                            plain18, plain34, resnet18, resnet34, resnet50,
                                            resnet101, resnet152)
from tinyres.models.vgg import (VGG, cifar_vgg, cifar_vgg11, cifar_vgg13,  # noqa: E402
                                cifar_vgg16, cifar_vgg19, imagenet_vgg, make_features, vgg11,
                                vgg11_bn, vgg11_lrn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg16_c,
                                vgg19, vgg19_bn)
from tinyres.models.summary import LayerRow, ModelSummary, summary  # noqa: E402
from tinyres.models.views import (block_outputs, compare_gradient_norms,  # noqa: E402
                                  gradient_norms)
