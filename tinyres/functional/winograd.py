"""Floor 4, beside conv.py: Winograd's F(2x2, 3x3), in plain NumPy: the readable twin of the fast
path's 3x3 convolutions (kernels/cpu/conv_winograd.py), and the statement a test holds it to.

A 3x3, stride-1 convolution computed on 2x2 tiles of the output. Each 4x4 tile d of the padded
input (tiles 2 apart, so neighbours overlap by 2, as 3x3 windows do) gives a 2x2 output tile

    y = A^T [ (G g G^T) * (B^T d B) ] A        * elementwise; 16 multiplications instead of 36

with the constant matrices below (docs/conv.md shows why the extra terms cancel). Over channels,
the elementwise product and the sum over c are, at each of the 16 positions (p, q) of a tile, one
matrix product:

    V[p, q] = (B^T d B)[p, q] of every tile          (N, C, TH, TW)     input tiles, transformed
    U[p, q] = (G g G^T)[p, q] of every filter        (OC, C)            filters, transformed
    M[p, q] = sum over c of U[p, q] * V[p, q]        (N, OC, TH, TW)    16 products
    y       = A^T M A of every tile, put in place    (N, OC, OH, OW)

The backward is the adjoint of each linear step, in reverse order (A dy A^T, the two products'
gradients, B dV B^T added back where each tile came from, G^T dU G). Here every step is an
einsum on the whole batch: the algorithm, not the speed (the kernels do the same arithmetic in
chunks of images, channels last). Only for what the kernels take it for: 3x3 filters, stride 1,
even output sizes. Names as in conv.py; TH = OH/2, TW = OW/2 tiles down and across.
"""
from tinyres.backend import get_array_module

BT = [[1, 0, -1, 0],
      [0, 1, 1, 0],
      [0, -1, 1, 0],
      [0, 1, 0, -1]]             # (4, 4): an input tile's 4 numbers -> its 4 positions
G = [[1, 0, 0],
     [0.5, 0.5, 0.5],
     [0.5, -0.5, 0.5],
     [0, 0, 1]]                  # (4, 3): a filter's 3 taps -> the 4 positions
AT = [[1, 1, 1, 0],
      [0, 1, -1, -1]]            # (2, 4): the 4 positions -> an output tile's 2 numbers


def _matrices(xp, dtype):
    return (xp.asarray(BT, dtype=dtype), xp.asarray(G, dtype=dtype), xp.asarray(AT, dtype=dtype))


def _input_tiles(x, padding, out_size):
    """The transformed 4x4 input tiles V (4, 4, N, C, TH, TW) of x (N, C, H, W)."""
    xp = get_array_module(x)
    (PH, PW), (OH, OW) = padding, out_size
    TH, TW = OH // 2, OW // 2
    x = xp.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))            # (N, C, OH+2, OW+2)
    d = xp.empty(x.shape[:2] + (TH, TW, 4, 4), dtype=x.dtype)      # d[..., th, tw, i, j]
    for i in range(4):
        for j in range(4):
            d[..., i, j] = x[:, :, i:i + 2 * TH:2, j:j + 2 * TW:2]
    B_T = _matrices(xp, x.dtype)[0]
    return xp.einsum("pi,nctwij,qj->pqnctw", B_T, d, B_T)          # B^T d B


def _filter_tiles(weight):
    """The transformed filters U (4, 4, OC, C) of weight (OC, C, 3, 3)."""
    G_ = _matrices(get_array_module(weight), weight.dtype)[1]
    return get_array_module(weight).einsum("pa,ocab,qb->pqoc", G_, weight, G_)    # G g G^T


def winograd_conv2d_forward(x, weight, padding):
    """y = conv(x, weight), 3x3 filters at stride 1: x (N, C, H, W), weight (OC, C, 3, 3)
    -> y (N, OC, OH, OW), OH = H + 2*PH - 2 and OW even."""
    xp = get_array_module(x)
    N, OC = x.shape[0], weight.shape[0]
    (PH, PW) = padding
    OH, OW = x.shape[2] + 2 * PH - 2, x.shape[3] + 2 * PW - 2
    V = _input_tiles(x, padding, (OH, OW))                          # (4, 4, N, C, TH, TW)
    U = _filter_tiles(weight)                                       # (4, 4, OC, C)
    M = xp.einsum("pqoc,pqnctw->pqnotw", U, V)                      # the 16 products
    A_T = _matrices(xp, x.dtype)[2]
    y = xp.einsum("ip,pqnotw,jq->notiwj", A_T, M, A_T)              # A^T M A, (N, OC, TH, 2, TW, 2)
    return y.reshape(N, OC, OH, OW)


def winograd_conv2d_backward(gy, x, weight, padding):
    """(gx, gweight) of winograd_conv2d_forward: gy (N, OC, OH, OW), x and weight as there."""
    xp = get_array_module(gy)
    N, C, H, W = x.shape
    OC, (PH, PW), (OH, OW) = weight.shape[0], padding, gy.shape[2:]
    TH, TW = OH // 2, OW // 2
    B_T, G_, A_T = _matrices(xp, gy.dtype)
    V, U = _input_tiles(x, padding, (OH, OW)), _filter_tiles(weight)        # again
    dy = gy.reshape(N, OC, TH, 2, TW, 2)                            # dy[n, o, th, i, tw, j]
    dM = xp.einsum("ip,notiwj,jq->pqnotw", A_T, dy, A_T)            # A dy A^T
    dU = xp.einsum("pqnotw,pqnctw->pqoc", dM, V)                    # (4, 4, OC, C)
    dV = xp.einsum("pqnotw,pqoc->pqnctw", dM, U)                    # (4, 4, N, C, TH, TW)
    gweight = xp.einsum("pa,pqoc,qb->ocab", G_, dU, G_)             # G^T dU G, (OC, C, 3, 3)
    dd = xp.einsum("pi,pqnctw,qj->nctwij", B_T, dV, B_T)            # B dV B^T, every tile
    gx = xp.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=gy.dtype)
    for i in range(4):
        for j in range(4):                                          # overlapping tiles add
            gx[:, :, i:i + 2 * TH:2, j:j + 2 * TW:2] += dd[..., i, j]
    return gx[:, :, PH:PH + H, PW:PW + W], gweight
