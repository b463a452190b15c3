"""Floor 4, beside conv.py: Winograd's F(m x m, 3x3) for m = 2 and m = 4, in plain NumPy: the
readable twin of the fast path's 3x3 convolutions (kernels/cpu/conv_winograd.py), and the
statement a test holds it to.

A 3x3, stride-1 convolution computed on m x m tiles of the output. Each (m+2) x (m+2) tile d of
the padded input (tiles m apart, so neighbours overlap by 2, as 3x3 windows do) gives an m x m
output tile

    y = A^T [ (G g G^T) * (B^T d B) ] A        * elementwise: (m+2)^2 multiplications, not 9 m^2

with constant matrices per m below (Lavin and Gray 2015; docs/conv.md shows why the extra terms
cancel). What m changes: the tile is m+2 wide, tiles are m apart, and a tile's (m+2)^2 products
give m^2 outputs: 16 products for 4 outputs (m = 2, 4 per output), 36 for 16 (m = 4, 2.25 per
output, against im2col's 9). Over channels, the elementwise product and the sum over c are, at
each of the (m+2)^2 positions (p, q) of a tile, one matrix product (k = m + 2):

    V[p, q] = (B^T d B)[p, q] of every tile          (N, C, TH, TW)     input tiles, transformed
    U[p, q] = (G g G^T)[p, q] of every filter        (OC, C)            filters, transformed
    M[p, q] = sum over c of U[p, q] * V[p, q]        (N, OC, TH, TW)    k^2 products
    y       = A^T M A of every tile, put in place    (N, OC, OH, OW)

The backward is the adjoint of each linear step, in reverse order (A dy A^T, the two products'
gradients, B dV B^T added back where each tile came from, G^T dU G). Here every step is an
einsum on the whole batch: the algorithm, not the speed (the kernels do the same arithmetic in
chunks of images, channels last). Only for what the kernels take it for: 3x3 filters, stride 1,
output sizes multiples of m. Names as in conv.py; TH = OH/m, TW = OW/m tiles down and across.

What m = 4 costs: accuracy. F(2x2)'s matrices hold 0, +-1 and 0.5, so its transforms only add,
subtract and halve. F(4x4)'s evaluate the tile at the points 0, +-1, +-2 and infinity, so B^T
and A^T multiply by 2, 4, 5 and 8 and G by 1/6, 1/12 and 1/24 (not exact in binary): the
transformed numbers are up to some 100 times the data, and the rounding of each product comes
back through A^T multiplied by up to 8. In float32, against a float64 im2col conv (batch 16,
N(0, 1) inputs, He-initialised weights, N(0, 1) output gradient, padding 1), the largest absolute
error over the largest absolute value of the result, by tools/winograd_accuracy.py:

    C = OC  HxW     im2col float32           F(2x2)                   F(4x4)
                    y / gx / gweight         y / gx / gweight         y / gx / gweight
    16      32x32   4.5e-7 / 1.5e-7 / 3.2e-7  2.3e-7 / 2.3e-7 / 4.1e-7  4.2e-6 / 2.3e-6 / 4.0e-6
    32      16x16   6.5e-7 / 1.6e-7 / 2.9e-7  2.6e-7 / 2.1e-7 / 4.6e-7  5.2e-6 / 2.6e-6 / 4.1e-6
    64      8x8     5.5e-7 / 2.0e-7 / 4.0e-7  3.5e-7 / 3.0e-7 / 6.4e-7  7.6e-6 / 3.2e-6 / 3.7e-6

F(2x2) rounds no worse than im2col; F(4x4) 6 to 22 times worse, still below 1e-5 of the result's
scale (computing the filter transforms in float64 changed none of these figures: the error is the
input and output transforms'). Training did not notice (ResNet-20, 5 epochs on the bundled
sample, `tinyres train --threads 1`: test accuracy 0.392, where docs/training.md's run by F(2x2)
ended at 0.375); a test does, so the tests hold the float32 Winograd routes to an absolute
tolerance of 1e-4 times the result's largest value, some 13 times the worst figure above.
"""
from tinyres.backend import get_array_module

# For each m: B^T (k, k) takes an input tile's k = m+2 numbers to its k positions, G (k, 3) a
# filter's 3 taps to the k positions, A^T (m, k) the k positions to an output tile's m numbers.
MATRICES = {
    2: ([[1, 0, -1, 0],
         [0, 1, 1, 0],
         [0, -1, 1, 0],
         [0, 1, 0, -1]],
        [[1, 0, 0],
         [1 / 2, 1 / 2, 1 / 2],
         [1 / 2, -1 / 2, 1 / 2],
         [0, 0, 1]],
        [[1, 1, 1, 0],
         [0, 1, -1, -1]]),
    4: ([[4, 0, -5, 0, 1, 0],                      # the points 0, -1, 1, -2, 2 and infinity
         [0, -4, -4, 1, 1, 0],
         [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0],
         [0, 2, -1, -2, 1, 0],
         [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0],
         [-1 / 6, -1 / 6, -1 / 6],
         [-1 / 6, 1 / 6, -1 / 6],
         [1 / 24, 1 / 12, 1 / 6],
         [1 / 24, -1 / 12, 1 / 6],
         [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0],
         [0, 1, -1, 2, -2, 0],
         [0, 1, 1, 4, 4, 0],
         [0, 1, -1, 8, -8, 1]]),
}


def _matrices(xp, dtype, m):
    """B^T, G, A^T of F(m x m, 3x3) as arrays of dtype."""
    if m not in MATRICES:
        raise ValueError(f"winograd: tile size m must be one of {sorted(MATRICES)}, got {m}")
    return tuple(xp.asarray(matrix, dtype=dtype) for matrix in MATRICES[m])


def _input_tiles(x, padding, out_size, m):
    """The transformed (m+2)x(m+2) input tiles V (k, k, N, C, TH, TW) of x (N, C, H, W)."""
    xp = get_array_module(x)
    (PH, PW), (OH, OW), k = padding, out_size, m + 2
    TH, TW = OH // m, OW // m
    x = xp.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))            # (N, C, OH+2, OW+2)
    d = xp.empty(x.shape[:2] + (TH, TW, k, k), dtype=x.dtype)      # d[..., th, tw, i, j]
    for i in range(k):
        for j in range(k):
            d[..., i, j] = x[:, :, i:i + m * TH:m, j:j + m * TW:m]
    B_T = _matrices(xp, x.dtype, m)[0]
    return xp.einsum("pi,nctwij,qj->pqnctw", B_T, d, B_T)          # B^T d B


def _filter_tiles(weight, m):
    """The transformed filters U (k, k, OC, C) of weight (OC, C, 3, 3)."""
    xp = get_array_module(weight)
    G_ = _matrices(xp, weight.dtype, m)[1]
    return xp.einsum("pa,ocab,qb->pqoc", G_, weight, G_)             # G g G^T


def winograd_conv2d_forward(x, weight, padding, m=2):
    """y = conv(x, weight), 3x3 filters at stride 1, by F(m x m, 3x3): x (N, C, H, W),
    weight (OC, C, 3, 3) -> y (N, OC, OH, OW), OH = H + 2*PH - 2 and OW multiples of m."""
    xp = get_array_module(x)
    N, OC = x.shape[0], weight.shape[0]
    (PH, PW) = padding
    OH, OW = x.shape[2] + 2 * PH - 2, x.shape[3] + 2 * PW - 2
    V = _input_tiles(x, padding, (OH, OW), m)                       # (k, k, N, C, TH, TW)
    U = _filter_tiles(weight, m)                                    # (k, k, OC, C)
    M = xp.einsum("pqoc,pqnctw->pqnotw", U, V)                      # the k^2 products
    A_T = _matrices(xp, x.dtype, m)[2]
    y = xp.einsum("ip,pqnotw,jq->notiwj", A_T, M, A_T)              # A^T M A, (N, OC, TH, m, TW, m)
    return y.reshape(N, OC, OH, OW)


def winograd_conv2d_backward(gy, x, weight, padding, m=2):
    """(gx, gweight) of winograd_conv2d_forward: gy (N, OC, OH, OW), x, weight and m as there."""
    xp = get_array_module(gy)
    N, C, H, W = x.shape
    OC, (PH, PW), (OH, OW), k = weight.shape[0], padding, gy.shape[2:], m + 2
    TH, TW = OH // m, OW // m
    B_T, G_, A_T = _matrices(xp, gy.dtype, m)
    V, U = _input_tiles(x, padding, (OH, OW), m), _filter_tiles(weight, m)      # again
    dy = gy.reshape(N, OC, TH, m, TW, m)                            # dy[n, o, th, i, tw, j]
    dM = xp.einsum("ip,notiwj,jq->pqnotw", A_T, dy, A_T)            # A dy A^T
    dU = xp.einsum("pqnotw,pqnctw->pqoc", dM, V)                    # (k, k, OC, C)
    dV = xp.einsum("pqnotw,pqoc->pqnctw", dM, U)                    # (k, k, N, C, TH, TW)
    gweight = xp.einsum("pa,pqoc,qb->ocab", G_, dU, G_)             # G^T dU G, (OC, C, 3, 3)
    dd = xp.einsum("pi,pqnctw,qj->nctwij", B_T, dV, B_T)            # B dV B^T, every tile
    gx = xp.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=gy.dtype)
    for i in range(k):
        for j in range(k):                                          # overlapping tiles add
            gx[:, :, i:i + m * TH:m, j:j + m * TW:m] += dd[..., i, j]
    return gx[:, :, PH:PH + H, PW:PW + W], gweight
