"""Floor 4: the layers of a CNN as differentiable functions, one file per op family.

    import tinyres.functional as F
    y = F.relu(F.batch_norm(F.conv2d(x, w, padding=1), ...))

Each file shows the readable NumPy math of its op, forward beside backward.
"""
