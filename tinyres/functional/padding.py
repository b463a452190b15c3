"""Floor 4: F.pad — constant padding in PyTorch's argument order.

PyTorch lists the padding from the *last* dim backwards, two numbers per dim:

    pad = (left, right)                         pads the last dim (W)
    pad = (left, right, top, bottom)            ... and the one before it (H)
    pad = (left, right, top, bottom, front, back)   ... and the channels (C) of (N, C, H, W)

so ``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))``, the option-A shortcut of the CIFAR ResNets,
adds p zero channels before and p after. The op itself is `tinyres.ops.Pad`, which takes NumPy's
(before, after) pair per dim from the first dim on; this function only reorders.
"""
from tinyres import ops
from tinyres.errors import not_supported


def pad(input, pad, mode="constant", value=None):
    """Pad `input` with `value` (0 by default), as ``torch.nn.functional.pad``. Only the
    constant mode; negative padding (cropping) raises: slice the tensor instead."""
    if mode != "constant":
        raise not_supported("pad", f"mode={mode!r}", "use mode='constant' (reflect, replicate "
                            "and circular are not implemented)")
    pad = tuple(pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: expected an even number of values, two per dim from the last dim "
                         f"backwards, at most {2 * input.ndim} for a tensor of shape "
                         f"{tuple(input.shape)}, got {pad}")
    if any(not isinstance(p, int) or p < 0 for p in pad):
        raise not_supported("pad", f"pad={pad} (negative or non-integer)", "give non-negative "
                            "ints, and crop by slicing (x[..., 1:-1])")
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]          # last dim first
    pad_width = [(0, 0)] * (input.ndim - len(pairs)) + pairs[::-1]           # first dim first
    return ops.pad(input, pad_width, 0.0 if value is None else value)
