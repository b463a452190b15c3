"""The table `tinyres gradcheck` runs: op name -> builder(rng) returning
[(description, fn, inputs), ...], each case checked by `tinyres.gradcheck.gradcheck`.

The course room owns it: each family module of this package registers its builders with
``@register("op name")``, and importing `tinyres.course.checks` registers them all. The engine's
checker (tinyres/gradcheck.py) knows nothing of it.
"""
REGISTRY = {}


def register(name):
    """Register a builder of gradient-check cases under `name` in `tinyres gradcheck`'s table."""
    def decorate(builder):
        REGISTRY[name] = builder
        return builder
    return decorate
