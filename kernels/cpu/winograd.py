"""Winograd's minimal filtering F(m x m, 3x3), m = 2 or 4: a 3x3, stride-1 convolution with 2.25
(m = 2) or 4 (m = 4) times fewer multiplications than im2col + GEMM (Lavin and Gray, "Fast
Algorithms for Convolutional Neural Networks", 2015).

One channel, one filter, one dimension first. Two outputs of a 3-tap filter g over four inputs d
need 6 multiplications done directly (y0 = d0 g0 + d1 g1 + d2 g2, y1 = d1 g0 + d2 g1 + d3 g2),
but only 4 this way:

    m0 = (d0 - d2) g0        m1 = (d1 + d2) (g0 + g1 + g2) / 2
    m3 = (d1 - d3) g2        m2 = (d2 - d1) (g0 - g1 + g2) / 2
    y0 = m0 + m1 + m2        y1 = m1 - m2 - m3

(multiply it out: the extra terms cancel). In matrices, y = A^T [(G g) * (B^T d)] with constant
B^T, G and A^T and * elementwise: F(2, 3). F(4, 3) is the same idea with four outputs from six
inputs: six products, the polynomials evaluated at 0, +-1, +-2 and infinity (BT, G, AT below).
Nested in two dimensions, an (m+2)x(m+2) tile d of the input gives an m x m tile of the output:

    y (m x m) = A^T [ (G g G^T) * (B^T d B) ] A        (m+2)^2 multiplications instead of 9 m^2

Over channels, the elementwise product and the sum over c become, for each of the k^2 positions
(k = m + 2) of a tile, one matrix product over all tiles t at once:

    V[i] (T, C)  = (B^T d B)[i] of every input tile         input_transform(padded, V)
    U[i] (OC, C) = (G g G^T)[i] of every filter             filter_transform(weight, m)
    M[i] (T, OC) = V[i] @ U[i]^T                            k^2 GEMMs (numpy.matmul, BLAS)
    y            = A^T M A of every tile, put in place      output_transform(M, y)

The output tiles are m x m steps apart, the input tiles (m+2)x(m+2) windows m apart (neighbours
overlap by 2 rows or columns, as 3x3 windows do). The backward pass is the adjoint of each linear
step:

    dM[i]  = (A dy A^T)[i] of every output tile            output_transform_adjoint(gy, dM)
    dU[i]  = dM[i]^T @ V[i]      (OC, C), over all tiles    k^2 GEMMs
    dV[i]  = dM[i] @ U[i]        (T, C)                     k^2 GEMMs
    dx     = B dV B^T of every tile, added back where the tile came from (overlaps add)
                                                            input_transform_adjoint(dV, gx)
    dg     = G^T dU G                                       filter_transform_backward(dU)

So the whole algorithm is four tile kernels, two transforms and their exact adjoints, each built
from the 1-D transforms below; the filter transforms are one matrix product each, by G (x) G.
F(2x2)'s matrices hold 0, +-1 and 0.5, exact in binary, so its float32 results differ from
im2col + GEMM's by rounding only; F(4x4)'s hold 2, 4, 5, 8 and 1/6, 1/12, 1/24, which grow the
transformed numbers and with them the rounding, 6 to 22 times F(2x2)'s (figures in
tinyres/functional/winograd.py's docstring). tests/test_kernels_cpu.py holds both equal to the
readable conv.

kernels/cpu/conv.py decides when to use this (3x3, stride 1, even output sizes), conv_winograd.py
picks m and runs it in chunks of images, as conv_gemm.py runs im2col + GEMM. The readable NumPy
twin of the whole algorithm is tinyres/functional/winograd.py. This module never imports tinyres.
"""
import numpy
from numba import njit

# y = A^T [(G g G^T) * (B^T d B)] A, for m = 2 and m = 4; the rows of BT and G are a tile's
# positions, the columns of AT too.
BT = {2: numpy.array([[1, 0, -1, 0],
                      [0, 1, 1, 0],
                      [0, -1, 1, 0],
                      [0, 1, 0, -1]], dtype=numpy.float64),           # (4, 4): tile -> positions
      4: numpy.array([[4, 0, -5, 0, 1, 0],
                      [0, -4, -4, 1, 1, 0],
                      [0, 4, -4, -1, 1, 0],
                      [0, -2, -1, 2, 1, 0],
                      [0, 2, -1, -2, 1, 0],
                      [0, 4, 0, -5, 0, 1]], dtype=numpy.float64)}     # (6, 6)
G = {2: numpy.array([[1, 0, 0],
                     [1 / 2, 1 / 2, 1 / 2],
                     [1 / 2, -1 / 2, 1 / 2],
                     [0, 0, 1]], dtype=numpy.float64),                # (4, 3): filter -> positions
     4: numpy.array([[1 / 4, 0, 0],
                     [-1 / 6, -1 / 6, -1 / 6],
                     [-1 / 6, 1 / 6, -1 / 6],
                     [1 / 24, 1 / 12, 1 / 6],
                     [1 / 24, -1 / 12, 1 / 6],
                     [0, 0, 1]], dtype=numpy.float64)}                # (6, 3)
AT = {2: numpy.array([[1, 1, 1, 0],
                      [0, 1, -1, -1]], dtype=numpy.float64),          # (2, 4): positions -> tile
      4: numpy.array([[1, 1, 1, 1, 1, 0],
                      [0, 1, -1, 2, -2, 0],
                      [0, 1, 1, 4, 4, 0],
                      [0, 1, -1, 8, -8, 1]], dtype=numpy.float64)}    # (4, 6)


# Layout. The padded input and its gradient are a chunk of images channels last with its columns
# split by phase, w % m: (B, rows, m, Wm, C), column w at [w % m, w // m], Wm = OW/m + 1 (for
# m = 4 the last slots of phases 2 and 3 are never used); the output and its gradient are plain
# channels last, (B, OH, OW, OC), the fast path's activations themselves. Split so, column j of
# the input tile tw, padded column m*tw + j, is at phase j % m, place tw + j // m: for every tile
# of a row of tiles at once, each column of the tiles is one whole run of numbers (m = 2:
# even[tw], odd[tw], even[tw + 1], odd[tw + 1]; m = 4: phases 0, 1, 2, 3 at tw, then 0, 1 at
# tw + 1). So the input transforms are a few long loops over a row of tiles at once, which the
# compiler turns into vector instructions; the output transforms, whose tiles do not overlap, go
# tile by tile along the row, OC numbers at a time. The kernels walk flat views with indices from
# 0: Numba then knows no index is negative (an index like e + C would cost a test for negative
# indices on every element, and the vector instructions with it); and they take the views by 1-D
# slicing, which costs nothing, not by reshape, which costs a call.
#
# Runs. A 1-D transform takes the k = m + 2 (or m) numbers of every tile of a row as runs, named
# by one rule, (flat, at, phase, step): element j is the run flat[at + (j % m) * phase +
# (j // m) * step:][:length]. The rule names the split columns above (phase = one phase's numbers,
# step = C), rows one after another (phase = a row's numbers, step = m * phase) and the positions
# of V and M (phase = T * C, step = m * phase).
@njit(inline="always")
def _runs2(runs, length):
    """The runs of elements j = 0, 1, 2, 3 of F(2x2)'s 4-tiles (1-D slices: free)."""
    flat, at, phase, step = runs
    return (flat[at:at + length], flat[at + phase:at + phase + length],
            flat[at + step:at + step + length],
            flat[at + step + phase:at + step + phase + length])


@njit(inline="always")
def _runs4(runs, length):
    """The runs of elements j = 0, ..., 5 of F(4x4)'s 6-tiles (1-D slices: free)."""
    flat, at, phase, step = runs
    return (flat[at:at + length], flat[at + phase:at + phase + length],
            flat[at + 2 * phase:at + 2 * phase + length],
            flat[at + 3 * phase:at + 3 * phase + length],
            flat[at + step:at + step + length],
            flat[at + step + phase:at + step + phase + length])


# A 2-D transform L X L^T is two 1-D ones: down the columns of the tile (the rows combine), then
# along its rows (the columns combine). The four 1-D transforms, from the matrices above, each on
# runs of `length` numbers, for m = 2 and for m = 4 (the factors in the dtype of the data, so
# float32 stays float32):
@njit(inline="always")
def _bt_into(m, source, target, length):
    """v = B^T d: an input tile's m + 2 numbers (source runs) -> its m + 2 positions (target)."""
    if m == 2:
        d0, d1, d2, d3 = _runs2(source, length)
        v0, v1, v2, v3 = _runs2(target, length)
        for e in range(length):
            v0[e] = d0[e] - d2[e]
        for e in range(length):
            v1[e] = d1[e] + d2[e]
        for e in range(length):
            v2[e] = d2[e] - d1[e]
        for e in range(length):
            v3[e] = d1[e] - d3[e]
    else:
        d0, d1, d2, d3, d4, d5 = _runs4(source, length)
        v0, v1, v2, v3, v4, v5 = _runs4(target, length)
        two, four, five = v0.dtype.type(2), v0.dtype.type(4), v0.dtype.type(5)
        for e in range(length):
            v0[e] = four * d0[e] - five * d2[e] + d4[e]
        for e in range(length):
            v1[e] = d3[e] + d4[e] - four * (d1[e] + d2[e])
        for e in range(length):
            v2[e] = four * (d1[e] - d2[e]) + d4[e] - d3[e]
        for e in range(length):
            v3[e] = two * (d3[e] - d1[e]) + d4[e] - d2[e]
        for e in range(length):
            v4[e] = two * (d1[e] - d3[e]) + d4[e] - d2[e]
        for e in range(length):
            v5[e] = four * d1[e] - five * d3[e] + d5[e]


@njit(inline="always")
def _b_added_into(m, source, target, length):
    """d += B v, the adjoint of _bt_into: m + 2 positions' gradients (source) added into the
    input tile's m + 2 (target)."""
    if m == 2:
        v0, v1, v2, v3 = _runs2(source, length)
        d0, d1, d2, d3 = _runs2(target, length)
        for e in range(length):
            d0[e] += v0[e]
        for e in range(length):
            d1[e] += v1[e] - v2[e] + v3[e]
        for e in range(length):
            d2[e] += v1[e] + v2[e] - v0[e]
        for e in range(length):
            d3[e] -= v3[e]
    else:
        v0, v1, v2, v3, v4, v5 = _runs4(source, length)
        d0, d1, d2, d3, d4, d5 = _runs4(target, length)
        two, four, five = v0.dtype.type(2), v0.dtype.type(4), v0.dtype.type(5)
        for e in range(length):
            d0[e] += four * v0[e]
        for e in range(length):
            d1[e] += four * (v2[e] - v1[e] + v5[e]) + two * (v4[e] - v3[e])
        for e in range(length):
            d2[e] -= five * v0[e] + four * (v1[e] + v2[e]) + v3[e] + v4[e]
        for e in range(length):
            d3[e] += v1[e] - v2[e] + two * (v3[e] - v4[e]) - five * v5[e]
        for e in range(length):
            d4[e] += v0[e] + v1[e] + v2[e] + v3[e] + v4[e]
        for e in range(length):
            d5[e] += v5[e]


@njit(inline="always")
def _at_into(m, source, target, length):
    """y = A^T m: m + 2 positions (source runs) -> an output tile's m numbers (target)."""
    if m == 2:
        m0, m1, m2, m3 = _runs2(source, length)
        y0, y1 = _runs2(target, length)[:2]
        for e in range(length):
            y0[e] = m0[e] + m1[e] + m2[e]
        for e in range(length):
            y1[e] = m1[e] - m2[e] - m3[e]
    else:
        m0, m1, m2, m3, m4, m5 = _runs4(source, length)
        y0, y1, y2, y3 = _runs4(target, length)[:4]
        two, four, eight = y0.dtype.type(2), y0.dtype.type(4), y0.dtype.type(8)
        # one loop for the four outputs, each input read once (the other transforms keep a
        # loop per output: with targets that may overlap their sources, one loop is no longer
        # made vector instructions; docs/performance.md)
        for e in range(length):
            a, b, c, d = m1[e] + m2[e], m1[e] - m2[e], m3[e] + m4[e], m3[e] - m4[e]
            y0[e] = m0[e] + a + c
            y1[e] = b + two * d
            y2[e] = a + four * c
            y3[e] = b + eight * d + m5[e]


@njit(inline="always")
def _a_into(m, source, target, length):
    """m = A y, the adjoint of _at_into: an output tile's m gradients (source) -> its m + 2
    positions' (target)."""
    if m == 2:
        y0, y1 = _runs2(source, length)[:2]
        m0, m1, m2, m3 = _runs2(target, length)
        for e in range(length):
            m0[e] = y0[e]
        for e in range(length):
            m1[e] = y0[e] + y1[e]
        for e in range(length):
            m2[e] = y0[e] - y1[e]
        for e in range(length):
            m3[e] = -y1[e]
    else:
        y0, y1, y2, y3 = _runs4(source, length)[:4]
        m0, m1, m2, m3, m4, m5 = _runs4(target, length)
        two, four, eight = y0.dtype.type(2), y0.dtype.type(4), y0.dtype.type(8)
        # the copies m0 and m5 share a loop with another target: alone, each becomes a call
        # to memmove, which on runs of OC numbers costs more than all the rest (F(2x2)'s one
        # copy does not; docs/performance.md)
        for e in range(length):
            m0[e] = y0[e]
            m1[e] = y0[e] + y1[e] + y2[e] + y3[e]
        for e in range(length):
            m2[e] = y0[e] - y1[e] + y2[e] - y3[e]
        for e in range(length):
            m3[e] = y0[e] + two * y1[e] + four * y2[e] + eight * y3[e]
        for e in range(length):
            m4[e] = y0[e] - two * y1[e] + four * y2[e] - eight * y3[e]
            m5[e] = y3[e]


@njit(nogil=True, cache=True)
def input_transform(padded, V, rows):
    """V[k*p + q, t] = (B^T d B)[p, q] for every k x k tile d of padded (B, Hp, m, Wm, C), the
    columns split by phase (m = 2 or 4, k = m + 2), the tiles m apart, t = (b, th, tw) ->
    V (k*k, T, C). rows: scratch (k, m, Wm, C)."""
    B, Hp, m, Wm, C = padded.shape
    k = m + 2
    TH, TW, T = (Hp - 2) // m, Wm - 1, V.shape[1]
    n, L = m * Wm * C, TW * C          # numbers in a padded row; in a row of tiles' channels
    P, Vf, R = padded.reshape(padded.size), V.reshape(V.size), rows.reshape(rows.size)
    for b in range(B):
        for th in range(TH):
            # B^T down the columns: the k input rows of this row of tiles -> rows[0..k-1]
            _bt_into(m, (P, (b * Hp + m * th) * n, n, m * n), (R, 0, n, m * n), n)
            # then B^T along each of those rows, every tile of the row at once (its columns are
            # runs of the split row): V[k*p .. k*p + k-1] for the tiles t0 ...
            t0 = (b * TH + th) * TW
            for p in range(k):
                _bt_into(m, (R, p * n, Wm * C, C), (Vf, (k * p * T + t0) * C, T * C, m * T * C), L)


@njit(nogil=True, cache=True)
def input_transform_adjoint(dV, gpadded, rows):
    """The adjoint of input_transform: every tile's B dV B^T added into gpadded (B, Hp, m, Wm, C)
    where the tile came from; neighbouring tiles overlap by 2, so their parts add. gpadded must
    start at 0. rows: scratch (k, k, TW, C)."""
    B, Hp, m, Wm, C = gpadded.shape
    k = m + 2
    TH, TW, T = (Hp - 2) // m, Wm - 1, dV.shape[1]
    n, L = m * Wm * C, TW * C
    Gf, Vf, R = gpadded.reshape(gpadded.size), dV.reshape(dV.size), rows.reshape(rows.size)
    for b in range(B):
        for th in range(TH):
            # B down the columns of positions, every tile of the row at once:
            # dV[q::k] -> rows[:, q] (added, so zeroed first: one small pass in cache)
            t0 = (b * TH + th) * TW
            R[:] = 0.0
            for q in range(k):
                _b_added_into(m, (Vf, (q * T + t0) * C, k * T * C, m * k * T * C),
                              (R, q * L, k * L, m * k * L), L)
            # then B along each row, added into the tile's columns (its last two are the next
            # tile's first two)
            for i in range(k):
                _b_added_into(m, (R, k * i * L, L, m * L),
                              (Gf, (b * Hp + m * th + i) * n, Wm * C, C), L)


@njit(nogil=True, cache=True)
def output_transform(M, y, rows):
    """y[b, m*th + i, m*tw + j] = (A^T z A)[i, j] for every tile t = (b, th, tw) of positions
    z = M[:, t]: M (k*k, T, OC) -> y (B, OH, OW, OC), channels last (the tiles do not overlap);
    M's k*k = 16 positions say m = 2, 36 say m = 4. rows: scratch (m, k, TW, OC)."""
    B, OH, OW, OC = y.shape
    m = 2 if M.shape[0] == 16 else 4
    k = m + 2
    TH, TW, T = OH // m, OW // m, M.shape[1]
    n, L = OW * OC, TW * OC            # numbers in an output row; in a row of tiles' positions
    Y, Mf, R = y.reshape(y.size), M.reshape(M.size), rows.reshape(rows.size)
    for b in range(B):
        for th in range(TH):
            # A^T down the columns of positions, every tile of the row at once:
            # M[q::k] -> rows[:, q]
            t0 = (b * TH + th) * TW
            for q in range(k):
                _at_into(m, (Mf, (q * T + t0) * OC, k * T * OC, m * k * T * OC),
                         (R, q * L, k * L, m * k * L), L)
            # then A^T along each row, tile by tile: its m columns are the output row's pixels
            # m*tw .. m*tw + m-1, OC numbers each
            for i in range(m):
                at = (b * OH + m * th + i) * n
                for tw in range(TW):
                    _at_into(m, (R, k * i * L + tw * OC, L, m * L),
                             (Y, at + m * tw * OC, OC, m * OC), OC)


@njit(nogil=True, cache=True)
def output_transform_adjoint(gy, dM, rows):
    """The adjoint of output_transform: dM[:, t] = A dy A^T of every output tile dy of
    gy (B, OH, OW, OC), channels last -> dM (k*k, T, OC), whose k*k = 16 or 36 positions say
    m = 2 or 4. rows: scratch (k, m, TW, OC)."""
    B, OH, OW, OC = gy.shape
    m = 2 if dM.shape[0] == 16 else 4
    k = m + 2
    TH, TW, T = OH // m, OW // m, dM.shape[1]
    n = OW * OC                        # numbers in an output row
    Y, Mf, R = gy.reshape(gy.size), dM.reshape(dM.size), rows.reshape(rows.size)
    for b in range(B):
        for th in range(TH):
            # A down the columns: the m output rows of this row of tiles -> rows[0..k-1]
            _a_into(m, (Y, (b * OH + m * th) * n, n, m * n), (R, 0, n, m * n), n)
            # then A along each row, tile by tile: pixels m*tw .. m*tw + m-1 -> dM[k*p .. k*p + k-1]
            t0 = (b * TH + th) * TW
            for p in range(k):
                for tw in range(TW):
                    _a_into(m, (R, p * n + m * tw * OC, OC, m * OC),
                            (Mf, (k * p * T + t0 + tw) * OC, T * OC, m * T * OC), OC)


# The filter transforms as one matrix product each. Over the 9 taps g[i, j] of a filter, the
# position (p, q) of G g G^T is sum_ij G[p, i] G[q, j] g[i, j]: the row k*p + q of the Kronecker
# product GG = G (x) G, (k*k, 9), times the filter's taps. So every filter of a layer is
# transformed by one GEMM, GG @ (9, filters), and the adjoint, G^T dU G, by GG^T @ dU; the
# factors are taken in float64 and rounded once to the data's type.
GG = {m: numpy.kron(G[m], G[m]) for m in G}                          # (k*k, 9)


def filter_transform(weight, m, out_channels_first=True):
    """U[k*p + q] = (G g G^T)[p, q] of every 3x3 filter g = weight[o, c], F(m x m, 3x3), in
    weight's dtype: U (k*k, OC, C), or (k*k, C, OC) when not out_channels_first (the forward's
    V @ U^T reads U^T). weight (OC, C, 3, 3)."""
    OC, C = weight.shape[:2]
    taps = weight if out_channels_first else weight.transpose(1, 0, 2, 3)
    taps = taps.reshape(-1, 9).T                                     # (9, filters)
    return (GG[m].astype(weight.dtype) @ taps).reshape(
        (-1, OC, C) if out_channels_first else (-1, C, OC))


def filter_transform_backward(gU):
    """The adjoint of filter_transform (out_channels_first): gU (k*k, OC, C) -> gweight
    (OC, C, 3, 3) = G^T dU G, k*k = 16 or 36 positions for m = 2 or 4."""
    positions, OC, C = gU.shape
    m = round(positions ** 0.5) - 2
    taps = GG[m].T.astype(gU.dtype) @ gU.reshape(positions, OC * C)   # (9, OC*C)
    return numpy.ascontiguousarray(taps.T).reshape(OC, C, 3, 3)
