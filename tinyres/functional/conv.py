"""Floor 4: convolution as one matrix product (im2col + GEMM).

A 2-D convolution slides a (C, KH, KW) filter over the image and takes a dot product at every
position. Written as loops that is seven nested loops; written for a computer it is one matrix
product, once every patch the filter will see has been copied out as a row of a matrix:

    im2col:   x (N, C, H, W)           -> cols (N*OH*OW, C*KH*KW)     one row per output pixel
    GEMM:     cols @ W.reshape(OC, -1).T  = (N*OH*OW, OC)              every filter on every patch
    reshape:  (N*OH*OW, OC) -> (N, OH, OW, OC) -> transpose -> (N, OC, OH, OW)

The backward pass is two more matrix products on the same `cols`, and `col2im`, the adjoint of
im2col, which adds each patch's gradient back where the patch came from (overlapping patches add).
See docs/conv.md for the math.

The dimensions, named once and used everywhere below:

    N  batch size            C  input channels          OC  output channels (filters)
    H, W   input height, width           KH, KW  kernel height, width
    SH, SW stride (rows, columns)        PH, PW  zero padding added on each side
    OH = (H + 2*PH - KH) // SH + 1       OW = (W + 2*PW - KW) // SW + 1   output height, width
"""
from tinyres.autograd import Function
from tinyres.backend import get_array_module
from tinyres.dispatch import fast_twin
from tinyres.errors import not_supported
from tinyres.kernels.geometry import window_geometry
from tinyres.tensor import FLOAT_DTYPES


def _geometry(op, x_shape, kernel_size, stride, padding):
    """(N, C, H, W), (KH, KW), (SH, SW), (PH, PW), (OH, OW) for an im2col / col2im call; the
    window arithmetic (and its errors) is shared with the kernels (kernels/geometry.py)."""
    return (tuple(x_shape),) + window_geometry(op, x_shape, kernel_size, stride, padding)


# ----------------------------------------------------------------------------------------------
# im2col and its adjoint col2im (array-level: backend arrays in, backend arrays out)
# ----------------------------------------------------------------------------------------------
@fast_twin("im2col")
def im2col(x, kernel_size, stride=1, padding=0):
    """Copy every patch a (KH, KW) window visits into one row of a matrix.

    x (N, C, H, W) -> cols (N*OH*OW, C*KH*KW)

    Rows are ordered (n, oh, ow): the row of output pixel (oh, ow) of image n is
    n*OH*OW + oh*OW + ow. Columns are ordered (c, kh, kw), the order of a weight of shape
    (OC, C, KH, KW) flattened to (OC, C*KH*KW), so ``cols @ weight.reshape(OC, -1).T`` is the
    convolution, as (N*OH*OW, OC).

    One image, one channel, H = W = 3, a 2x2 kernel, stride 1, no padding (OH = OW = 2):

        x               patch at (oh, ow)         cols      (kh,kw) = (0,0) (0,1) (1,0) (1,1)
        a b c           (0, 0):  a b         ->   row 0:              a     b     d     e
        d e f                    d e
        g h i           (0, 1):  b c         ->   row 1:              b     c     e     f
                                 e f
                        (1, 0):  d e         ->   row 2:              d     e     g     h
                                 g h
                        (1, 1):  e f         ->   row 3:              e     f     h     i
                                 h i

    Instead of looping over the N*OH*OW patches, we loop over the KH*KW kernel offsets: the
    element at offset (kh, kw) of every patch at once is the strided slice
    ``x_padded[:, kh : kh + SH*OH : SH, kw : kw + SW*OW : SW, :]``, of shape (N, OH, OW, C),
    of the image laid out channels-last: then a pixel's C channels are neighbours in memory, as
    they are in a row of cols, and each copy moves runs of C numbers instead of single ones
    (2-3 times faster than slicing the NCHW image).
    """
    # BEGIN SOLUTION A2 im2col
    xp = get_array_module(x)
    (N, C, H, W), (KH, KW), (SH, SW), (PH, PW), (OH, OW) = _geometry(
        "im2col", x.shape, kernel_size, stride, padding)
    x = xp.pad(x.transpose(0, 2, 3, 1),                             # (N, H+2PH, W+2PW, C)
               ((0, 0), (PH, PH), (PW, PW), (0, 0)))
    # Laid out as (N, OH, OW, C, KH, KW) so that the final reshape to rows and columns is free.
    cols = xp.empty((N, OH, OW, C, KH, KW), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            cols[:, :, :, :, kh, kw] = x[:, kh:kh + SH * OH:SH, kw:kw + SW * OW:SW, :]
    return cols.reshape(N * OH * OW, C * KH * KW)
    # END SOLUTION


@fast_twin("col2im")
def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """The adjoint of im2col: add every row of `cols` back onto the patch it was copied from.

    cols (N*OH*OW, C*KH*KW) -> (N, C, H, W)

    Where patches overlap (stride < kernel) an input pixel was copied into several rows, so its
    gradient is the *sum* of those rows' entries; padding positions are dropped at the end.
    For any x and y:  <im2col(x), y> = <x, col2im(y)>.
    """
    # BEGIN SOLUTION A2 col2im
    xp = get_array_module(cols)
    (N, C, H, W), (KH, KW), (SH, SW), (PH, PW), (OH, OW) = _geometry(
        "col2im", x_shape, kernel_size, stride, padding)
    cols = cols.reshape(N, OH, OW, C, KH, KW)
    x = xp.zeros((N, H + 2 * PH, W + 2 * PW, C), dtype=cols.dtype)     # channels last, as im2col
    for kh in range(KH):
        for kw in range(KW):
            # within one offset the strided slice hits each pixel at most once, so += is safe;
            # the adding *across* offsets is what sums overlapping patches
            x[:, kh:kh + SH * OH:SH, kw:kw + SW * OW:SW, :] += cols[:, :, :, :, kh, kw]
    return x[:, PH:PH + H, PW:PW + W, :].transpose(0, 3, 1, 2)          # (N, C, H, W)
    # END SOLUTION


# ----------------------------------------------------------------------------------------------
# The whole convolution, array-level (each has a fast twin in kernels/)
# ----------------------------------------------------------------------------------------------
@fast_twin("conv2d_forward")
def conv2d_forward(x, weight, stride, padding):
    """The convolution without its bias: im2col, then one matrix product.

    x (N, C, H, W), weight (OC, C, KH, KW) -> y (N, OC, OH, OW), C-contiguous.
    """
    # BEGIN SOLUTION A2 conv2d_forward
    xp = get_array_module(x)
    OC, C, KH, KW = weight.shape
    (N, _, _, _), _, (SH, SW), (PH, PW), (OH, OW) = _geometry(
        "conv2d", x.shape, (KH, KW), stride, padding)
    cols = im2col(x, (KH, KW), (SH, SW), (PH, PW))                 # (N*OH*OW, C*KH*KW)
    y = cols @ weight.reshape(OC, C * KH * KW).T                    # (N*OH*OW, OC)
    # rows are (n, oh, ow), so the product is (N, OH, OW, OC), channels last; the transpose
    # makes it NCHW, and the copy makes the memory NCHW too (what the next op expects)
    y = y.reshape(N, OH, OW, OC).transpose(0, 3, 1, 2)              # (N, OC, OH, OW)
    return xp.ascontiguousarray(y)
    # END SOLUTION


@fast_twin("conv2d_backward")
def conv2d_backward(gy, x, weight, stride, padding, input_grad=True):
    """The gradients of y = conv2d_forward(x, weight): (gx, gweight), gx None unless input_grad.

    gy (N, OC, OH, OW), x (N, C, H, W), weight (OC, C, KH, KW).
    The columns are made again from x rather than kept from the forward pass: they are KH*KW
    times the size of x (75 MB for one layer of ResNet-20 at batch 128), x is kept anyway.
    """
    # BEGIN SOLUTION A2 conv2d_backward
    OC = weight.shape[0]
    cols = im2col(x, weight.shape[2:], stride, padding)           # (N*OH*OW, C*KH*KW)
    gy_rows = gy.transpose(0, 2, 3, 1).reshape(-1, OC)            # (N*OH*OW, OC)
    gweight = (gy_rows.T @ cols).reshape(weight.shape)            # (OC, C, KH, KW)
    gx = None
    if input_grad:
        gcols = gy_rows @ weight.reshape(OC, -1)                  # (N*OH*OW, C*KH*KW)
        gx = col2im(gcols, x.shape, weight.shape[2:], stride, padding)     # (N, C, H, W)
    return gx, gweight
    # END SOLUTION


# ----------------------------------------------------------------------------------------------
# The differentiable op
# ----------------------------------------------------------------------------------------------
class Conv2d(Function):
    """y[n, o, i, j] = b[o] + sum_{c, kh, kw} W[o, c, kh, kw] * x_pad[n, c, i*SH + kh, j*SW + kw]

    With cols = im2col(x) (N*OH*OW, C*KH*KW), W2 = W.reshape(OC, C*KH*KW) and gY the output
    gradient laid out as rows (N*OH*OW, OC), the forward is Y = cols W2^T + b and

        dL/dW2   = gY^T cols            (OC, C*KH*KW)
        dL/db    = sum of gY's rows     (OC,)
        dL/dcols = gY W2                (N*OH*OW, C*KH*KW),   dL/dx = col2im(dL/dcols)
    """

    def __init__(self, stride, padding):
        self.stride, self.padding = stride, padding         # (SH, SW), (PH, PW): checked pairs

    def forward(self, x, weight, bias=None):
        y = conv2d_forward(x, weight, self.stride, self.padding)   # (N, OC, OH, OW)
        if bias is not None:
            y += bias.reshape(1, -1, 1, 1)                          # every pixel gets b
        self.save(x=x, weight=weight)
        return y

    def backward(self, gy):
        input_grad = self.needs_input_grad[0]       # the first layer's image needs no gradient
        gx, gw = conv2d_backward(gy, self.x, self.weight, self.stride, self.padding, input_grad)
        if len(self.needs_input_grad) == 2:
            return gx, gw
        return gx, gw, gy.sum(axis=(0, 2, 3))                       # (OC,)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, name=None):
    """2-D convolution (cross-correlation, as in every deep-learning library), as
    ``torch.nn.functional.conv2d``.

    x (N, C, H, W), weight (OC, C, KH, KW) as PyTorch, bias (OC,) or None
    -> (N, OC, OH, OW). `stride` and `padding` are an int or a (height, width) pair, or padding
    "valid" (none) or "same" (stride 1, odd kernels); padding is zeros. Dilation and groups other
    than 1 raise. `name` (e.g. "layer1.0.conv1", passed by the nn layer) names the layer in errors.
    """
    x, op = input, name or "conv2d"
    if dilation not in (1, (1, 1)):
        raise not_supported(op, f"dilation={dilation!r}", "use dilation=1 (a larger kernel "
                            "covers the same field)")
    if groups != 1:
        raise not_supported(op, f"groups={groups!r}", "use groups=1 (one conv per group and "
                            "tinyres.cat joins them)")
    _check_conv_args(op, x, weight, bias)
    padding = padding_of_string(op, padding, weight.shape[2:], stride)
    # the window's arguments, checked where every path checks them (kernels/geometry.py)
    _, stride, padding, _ = window_geometry(op, x.shape, weight.shape[2:], stride, padding)
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d(stride, padding)(*inputs)


def padding_of_string(op, padding, kernel_size, stride):
    """PyTorch's padding="valid" (0) and "same" (k // 2, stride 1, odd kernel) as numbers."""
    if not isinstance(padding, str):
        return padding
    if padding == "valid":
        return 0
    if padding == "same" and stride in (1, (1, 1)) and all(k % 2 for k in kernel_size):
        return tuple(k // 2 for k in kernel_size)
    raise not_supported(op, f"padding={padding!r} (with stride {stride!r}, kernel "
                        f"{tuple(kernel_size)})", "give the padding as numbers, or 'same' with "
                        "stride 1 and an odd kernel")


def _check_conv_args(op, x, weight, bias):
    """Raise a clear error (expected vs actual) for tensors conv2d cannot compute with."""
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
    if weight.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D weight (out_channels, in_channels, KH, KW), got "
                         f"shape {tuple(weight.shape)}")
    if x.dtype.type not in FLOAT_DTYPES:
        raise TypeError(f"{op}: expected a floating point input (float32 or float64), got "
                        f"dtype {x.dtype}")
    if weight.dtype != x.dtype:
        raise TypeError(f"{op}: weight has dtype {weight.dtype} but the input has dtype "
                        f"{x.dtype}; convert one of them")
    OC, C = weight.shape[:2]
    if x.shape[1] != C:
        raise ValueError(f"{op}: weight expects {C} input channels (weight shape "
                         f"{tuple(weight.shape)}), got input with {x.shape[1]} channels, shape "
                         f"{tuple(x.shape)}")
    if bias is not None:
        if tuple(bias.shape) != (OC,):
            raise ValueError(f"{op}: expected a bias of shape ({OC},) (one per output channel), "
                             f"got shape {tuple(bias.shape)}")
        if bias.dtype != x.dtype:
            raise TypeError(f"{op}: bias has dtype {bias.dtype} but the input has dtype "
                            f"{x.dtype}")
