"""Winograd's minimal filtering F(2x2, 3x3): a 3x3, stride-1 convolution with 2.25 times fewer
multiplications than im2col + GEMM (Lavin and Gray, "Fast Algorithms for Convolutional Neural
Networks", 2015).

One channel, one filter, one dimension first. Two outputs of a 3-tap filter g over four inputs d
need 6 multiplications done directly (y0 = d0 g0 + d1 g1 + d2 g2, y1 = d1 g0 + d2 g1 + d3 g2),
but only 4 this way:

    m0 = (d0 - d2) g0        m1 = (d1 + d2) (g0 + g1 + g2) / 2
    m3 = (d1 - d3) g2        m2 = (d2 - d1) (g0 - g1 + g2) / 2
    y0 = m0 + m1 + m2        y1 = m1 - m2 - m3

(multiply it out: the extra terms cancel). In matrices, y = A^T [(G g) * (B^T d)] with the
constant BT, G and AT below and * elementwise. Nested in two dimensions, a 4x4 tile d of the
input gives a 2x2 tile of the output:

    y (2x2) = A^T [ (G g G^T) * (B^T d B) ] A        16 multiplications instead of 36

Over channels, the elementwise product and the sum over c become, for each of the 16 positions
k of the 4x4 tile, one matrix product over all tiles t at once:

    V[k] (T, C)  = (B^T d B)[k] of every input tile         input_transform(padded, V)
    U[k] (OC, C) = (G g G^T)[k] of every filter             filter_transform(weight)
    M[k] (T, OC) = V[k] @ U[k]^T                            16 GEMMs (numpy.matmul, BLAS)
    y            = A^T M A of every tile, put in place      output_transform(M, y)

The output tiles are 2x2 steps apart, the input tiles 4x4 windows 2 apart (neighbours overlap by
2 rows or columns, as 3x3 windows do). The backward pass is the adjoint of each linear step:

    dM[k]  = (A dy A^T)[k] of every output tile            output_transform_adjoint(gy, dM)
    dU[k]  = dM[k]^T @ V[k]      (OC, C), over all tiles    16 GEMMs
    dV[k]  = dM[k] @ U[k]        (T, C)                     16 GEMMs
    dx     = B dV B^T of every tile, added back where the tile came from (overlaps add)
                                                            input_transform_adjoint(dV, gx)
    dg     = G^T dU G                                       filter_transform_backward(dU)

So the whole algorithm is four tile kernels, two transforms and their exact adjoints, each built
from the 1-D transforms below; the filter transforms are small enough for numpy.einsum. The 0.5s
in G are exact in binary, and the transforms only add and subtract, so float32 results differ from im2col + GEMM's by rounding
only (tests/test_kernels_cpu.py holds them equal to the readable conv).

kernels/cpu/conv.py decides when to use this (3x3, stride 1, even output sizes) and
conv_winograd.py runs it in chunks of images, as conv_gemm.py runs im2col + GEMM. The readable
NumPy twin of the whole algorithm is tinyres/functional/winograd.py. This module never imports
tinyres.
"""
import numpy
from numba import njit

# y = A^T [(G g G^T) * (B^T d B)] A; the rows of each matrix are the positions of a 4-tile.
BT = numpy.array([[1, 0, -1, 0],
                  [0, 1, 1, 0],
                  [0, -1, 1, 0],
                  [0, 1, 0, -1]], dtype=numpy.float64)        # (4, 4): input tile -> positions
G = numpy.array([[1, 0, 0],
                 [0.5, 0.5, 0.5],
                 [0.5, -0.5, 0.5],
                 [0, 0, 1]], dtype=numpy.float64)             # (4, 3): filter -> positions
AT = numpy.array([[1, 1, 1, 0],
                  [0, 1, -1, -1]], dtype=numpy.float64)       # (2, 4): positions -> output tile


# Layout. The padded input and its gradient are a chunk of images channels last with its columns
# split by parity: (B, rows, 2, columns/2, C), column w at [w % 2, w // 2]; the output and its
# gradient are plain channels last, (B, OH, OW, OC), the fast path's activations themselves.
# Split by parity, the 4 columns of every input tile in a row of tiles are whole runs of numbers,
# even[tw], odd[tw], even[tw + 1], odd[tw + 1], so the input transforms are a few long loops over
# a row of tiles at once, which the compiler turns into vector instructions; the output
# transforms, whose tiles do not overlap, go tile by tile along the row, OC numbers at a time. The
# kernels walk flat views with indices from 0: Numba then knows no index is negative (an index
# like e + C would cost a test for negative indices on every element, and the vector
# instructions with it); and they take the views by 1-D slicing, which costs nothing, not by
# reshape, which costs a call.
#
# A 2-D transform L X L^T is two 1-D ones: down the columns of the tile (the rows combine), then
# along its rows (the columns combine). The four 1-D transforms, from the matrices above, each on
# runs of numbers (target runs are written; the loops run over the targets' length):
@njit(inline="always")
def _bt_into(d0, d1, d2, d3, v0, v1, v2, v3):
    """v = B^T d: an input 4-tile -> its 4 positions."""
    for e in range(len(v0)):
        v0[e] = d0[e] - d2[e]
    for e in range(len(v1)):
        v1[e] = d1[e] + d2[e]
    for e in range(len(v2)):
        v2[e] = d2[e] - d1[e]
    for e in range(len(v3)):
        v3[e] = d1[e] - d3[e]


@njit(inline="always")
def _b_into(v0, v1, v2, v3, d0, d1, d2, d3):
    """d = B v, the adjoint of _bt_into: 4 positions' gradients -> the input 4-tile's."""
    for e in range(len(d0)):
        d0[e] = v0[e]
    for e in range(len(d1)):
        d1[e] = v1[e] - v2[e] + v3[e]
    for e in range(len(d2)):
        d2[e] = v1[e] + v2[e] - v0[e]
    for e in range(len(d3)):
        d3[e] = -v3[e]


@njit(inline="always")
def _at_into(m0, m1, m2, m3, y0, y1):
    """y = A^T m: 4 positions -> the output 2-tile."""
    for e in range(len(y0)):
        y0[e] = m0[e] + m1[e] + m2[e]
    for e in range(len(y1)):
        y1[e] = m1[e] - m2[e] - m3[e]


@njit(inline="always")
def _a_into(y0, y1, m0, m1, m2, m3):
    """m = A y, the adjoint of _at_into: the output 2-tile's gradient -> its 4 positions'."""
    for e in range(len(m0)):
        m0[e] = y0[e]
    for e in range(len(m1)):
        m1[e] = y0[e] + y1[e]
    for e in range(len(m2)):
        m2[e] = y0[e] - y1[e]
    for e in range(len(m3)):
        m3[e] = -y1[e]


@njit(inline="always")
def _runs(flat, start, stride, length):
    """The four runs flat[start + i*stride:][:length], i = 0, 1, 2, 3 (1-D slices: free)."""
    return (flat[start:start + length], flat[start + stride:start + stride + length],
            flat[start + 2 * stride:start + 2 * stride + length],
            flat[start + 3 * stride:start + 3 * stride + length])


@njit(nogil=True, cache=True)
def input_transform(padded, V, rows):
    """V[4*p + q, t] = (B^T d B)[p, q] for every 4x4 tile d of padded (B, Hp, 2, Wp/2, C), the
    tiles 2 apart, t = (b, th, tw) -> V (16, T, C). rows: scratch (4, 2, Wp/2, C)."""
    B, Hp, _, Wh, C = padded.shape
    TH, TW, T = (Hp - 2) // 2, Wh - 1, V.shape[1]
    n, m = 2 * Wh * C, TW * C          # numbers in a padded row; in a row of tiles' channels
    P, Vf, R = padded.reshape(padded.size), V.reshape(V.size), rows.reshape(rows.size)
    for b in range(B):
        for th in range(TH):
            # B^T down the columns: the 4 input rows of this row of tiles -> rows[0..3]
            d0, d1, d2, d3 = _runs(P, (b * Hp + 2 * th) * n, n, n)
            r0, r1, r2, r3 = _runs(R, 0, n, n)
            _bt_into(d0, d1, d2, d3, r0, r1, r2, r3)
            # then B^T along each row: a tile's columns are even[tw], odd[tw], even[tw + 1],
            # odd[tw + 1], so every tile of the row is done at once (even1, odd1: the same runs
            # from the next tile on); V[4p..4p+3] for the tiles t0 ...
            t0 = (b * TH + th) * TW
            for p in range(4):
                even, odd = R[p * n:p * n + n // 2], R[p * n + n // 2:(p + 1) * n]
                v0, v1, v2, v3 = _runs(Vf, (4 * p * T + t0) * C, T * C, m)
                _bt_into(even, odd, even[C:], odd[C:], v0, v1, v2, v3)


@njit(nogil=True, cache=True)
def input_transform_adjoint(dV, gpadded, rows):
    """The adjoint of input_transform: every tile's B dV B^T added back into gpadded
    (B, Hp, 2, Wp/2, C) where the tile came from; neighbouring tiles overlap by 2, so their
    parts add. gpadded must start at 0. rows: scratch (4, 4, TW, C)."""
    B, Hp, _, Wh, C = gpadded.shape
    TH, TW, T = (Hp - 2) // 2, Wh - 1, dV.shape[1]
    n, m = 2 * Wh * C, TW * C
    G, Vf, R = gpadded.reshape(gpadded.size), dV.reshape(dV.size), rows.reshape(rows.size)
    for b in range(B):
        for th in range(TH):
            # B down the columns of positions, every tile of the row at once:
            # dV[q::4] -> rows[:, q]
            t0 = (b * TH + th) * TW
            for q in range(4):
                v0, v1, v2, v3 = _runs(Vf, (q * T + t0) * C, 4 * T * C, m)
                r0, r1, r2, r3 = _runs(R, q * m, 4 * m, m)
                _b_into(v0, v1, v2, v3, r0, r1, r2, r3)
            # then B along each row, added into the tile's columns even[tw], odd[tw],
            # even[tw + 1], odd[tw + 1] (the last two overlap the next tile's first two)
            for i in range(4):
                at = (b * Hp + 2 * th + i) * n
                even, odd = G[at:at + n // 2], G[at + n // 2:at + n]
                even1, odd1 = even[C:], odd[C:]
                s0, s1, s2, s3 = _runs(R, 4 * i * m, m, m)                    # rows[i]
                for e in range(m):
                    even[e] += s0[e]
                for e in range(m):
                    odd[e] += s1[e] - s2[e] + s3[e]
                for e in range(m):
                    even1[e] += s1[e] + s2[e] - s0[e]
                for e in range(m):
                    odd1[e] -= s3[e]


@njit(nogil=True, cache=True)
def output_transform(M, y, rows):
    """y[b, 2*th + i, 2*tw + j] = (A^T m A)[i, j] for every tile t = (b, th, tw) of positions
    m = M[:, t]: M (16, T, OC) -> y (B, OH, OW, OC), channels last (the tiles do not overlap).
    rows: scratch (2, 4, TW, OC)."""
    B, OH, OW, OC = y.shape
    TH, TW, T = OH // 2, OW // 2, M.shape[1]
    n, m = OW * OC, TW * OC            # numbers in an output row; in a row of tiles' positions
    Y, Mf, R = y.reshape(y.size), M.reshape(M.size), rows.reshape(rows.size)
    for b in range(B):
        for th in range(TH):
            # A^T down the columns of positions, every tile of the row at once:
            # M[q::4] -> rows[:, q]
            t0 = (b * TH + th) * TW
            for q in range(4):
                m0, m1, m2, m3 = _runs(Mf, (q * T + t0) * OC, 4 * T * OC, m)
                _at_into(m0, m1, m2, m3, R[q * m:(q + 1) * m], R[(4 + q) * m:(5 + q) * m])
            # then A^T along each row, tile by tile: its two columns are the output row's
            # pixels 2*tw and 2*tw + 1, OC numbers each
            for i in range(2):
                at = (b * OH + 2 * th + i) * n
                for tw in range(TW):
                    s0, s1, s2, s3 = _runs(R, 4 * i * m + tw * OC, m, OC)
                    pixel = at + 2 * tw * OC
                    _at_into(s0, s1, s2, s3, Y[pixel:pixel + OC], Y[pixel + OC:pixel + 2 * OC])


@njit(nogil=True, cache=True)
def output_transform_adjoint(gy, dM, rows):
    """The adjoint of output_transform: dM[:, t] = A dy A^T of every output tile dy of
    gy (B, OH, OW, OC), channels last -> dM (16, T, OC). rows: scratch (4, 2, TW, OC)."""
    B, OH, OW, OC = gy.shape
    TH, TW, T = OH // 2, OW // 2, dM.shape[1]
    n = OW * OC                        # numbers in an output row
    Y, Mf, R = gy.reshape(gy.size), dM.reshape(dM.size), rows.reshape(rows.size)
    for b in range(B):
        for th in range(TH):
            # A down the columns: the 2 output rows of this row of tiles -> rows[0..3]
            at = (b * OH + 2 * th) * n
            r0, r1, r2, r3 = _runs(R, 0, n, n)
            _a_into(Y[at:at + n], Y[at + n:at + 2 * n], r0, r1, r2, r3)
            # then A along each row, tile by tile: pixels 2*tw, 2*tw + 1 -> dM[4p..4p+3]
            t0 = (b * TH + th) * TW
            for p in range(4):
                for tw in range(TW):
                    m0, m1, m2, m3 = _runs(Mf, (4 * p * T + t0 + tw) * OC, T * OC, OC)
                    pixel = p * n + 2 * tw * OC
                    _a_into(R[pixel:pixel + OC], R[pixel + OC:pixel + 2 * OC], m0, m1, m2, m3)


def filter_transform(weight):
    """U[4*p + q, o, c] = (G g G^T)[p, q] of every 3x3 filter g = weight[o, c]:
    weight (OC, C, 3, 3) -> U (16, OC, C), in weight's dtype."""
    OC, C = weight.shape[:2]
    G_ = G.astype(weight.dtype)
    # optimize=True contracts one matrix at a time (through BLAS): the single three-operand
    # loop NumPy runs without it took 0.5 ms for a 64-channel layer, a third of its forward
    U = numpy.einsum("pa,ocab,qb->pqoc", G_, weight, G_, optimize=True)   # (4, 4, OC, C)
    return numpy.ascontiguousarray(U.reshape(16, OC, C))


def filter_transform_backward(gU):
    """The adjoint of filter_transform: gU (16, OC, C) -> gweight (OC, C, 3, 3) = G^T dU G."""
    OC, C = gU.shape[1:]
    G_ = G.astype(gU.dtype)
    gweight = numpy.einsum("pa,pqoc,qb->ocab", G_, gU.reshape(4, 4, OC, C), G_, optimize=True)
    return numpy.ascontiguousarray(gweight)
