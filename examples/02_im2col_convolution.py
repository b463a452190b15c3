"""Example 2: convolution as one matrix product — im2col, one GEMM, and col2im going back.

A 4x4 image becomes the im2col matrix (one row per output pixel, one column per filter weight);
one matrix product with the flattened filters gives the convolution, which we check against the
definition written as nested loops. Then the backward pass: two more matrix products, and
col2im, which adds each patch's gradient back where the patch came from.

    python examples/02_im2col_convolution.py          # a few seconds
    python examples/02_im2col_convolution.py --step   # pause between the steps

The code it walks through: tinyres/functional/conv.py (and conv_loops.py, the loops);
the math: docs/conv.md.
"""
import time

import numpy
from matplotlib.patches import Rectangle

import tinyres
import tinyres.functional as F
from tinyres.functional.conv_loops import conv2d_loops    # the definition, as seven loops
from tinyres.gradcheck import gradcheck

from lesson import Lesson, show, relative_error, which_kernel

lesson = Lesson(__file__, __doc__)
rng = lesson.rng

# -------------------------------------------------------------------------------------------
lesson.step("a tiny image and two 3x3 filters")
x = numpy.arange(1.0, 17.0).reshape(1, 1, 4, 4)           # N=1, C=1, H=W=4
w = rng.integers(-2, 3, size=(2, 1, 3, 3)).astype(numpy.float64)   # OC=2 filters, C=1, 3x3
show("x (N, C, H, W)", x)
show("w (OC, C, KH, KW)", w)
print("No padding, stride 1: OH = OW = (4 - 3) // 1 + 1 = 2, so 4 output pixels per filter.")

# -------------------------------------------------------------------------------------------
lesson.step("im2col: every 3x3 patch becomes one row")
cols = F.im2col(x, (3, 3), stride=1, padding=0)
show("cols = im2col(x) (N*OH*OW, C*KH*KW)", cols)
print("Row r = n*OH*OW + oh*OW + ow holds the patch under output pixel (oh, ow);")
print("column (c, kh, kw) holds the pixel at offset (kh, kw) of channel c: the order of")
print("w.reshape(OC, C*KH*KW), so one matrix product pairs every weight with its pixel.")
print("Inside im2col there is no loop over pixels: one strided slice per kernel offset")
print("(kh, kw) copies that element of every patch at once (9 slices for a 3x3 kernel).")

fig, (left, right) = lesson.figure(1, 2, figsize=(10, 3.6),
                                   gridspec_kw={"width_ratios": [1, 2.2], "wspace": 0.35})
colours = ["tab:red", "tab:blue", "tab:green", "tab:orange"]
left.imshow(x[0, 0], cmap="Greys", alpha=0.3)
for (i, j), value in numpy.ndenumerate(x[0, 0]):
    left.text(j, i, f"{value:.0f}", ha="center", va="center")
for r, colour in enumerate(colours):
    oh, ow = divmod(r, 2)
    left.add_patch(Rectangle(
        (ow - 0.45 + 0.05 * r, oh - 0.45 + 0.05 * r), 2.8, 2.8, fill=False, edgecolor=colour,
        linewidth=2))
left.set_title("x: the four 3x3 patches")
left.set_xticks([]), left.set_yticks([])
right.imshow(cols, cmap="Greys", alpha=0.3, aspect="auto")
for (i, j), value in numpy.ndenumerate(cols):
    right.text(j, i, f"{value:.0f}", ha="center", va="center", color=colours[i])
right.set_xticks(range(9), [f"{kh},{kw}" for kh in range(3) for kw in range(3)])
right.set_yticks(range(4), [f"({r // 2},{r % 2})" for r in range(4)])
right.set_ylabel("row: output pixel (oh, ow)")
right.set_xlabel("column (kh, kw)")
right.set_title("cols = im2col(x): one row per patch")
lesson.save(fig, "im2col.png")

# -------------------------------------------------------------------------------------------
lesson.step("one matrix product (GEMM) is the whole convolution")
w2 = w.reshape(2, -1)                                        # (OC, C*KH*KW)
rows = cols @ w2.T                                           # (N*OH*OW, OC)
show("cols @ w.reshape(OC, -1).T  (N*OH*OW, OC)", rows)
y = rows.reshape(1, 2, 2, 2).transpose(0, 3, 1, 2)          # (N, OH, OW, OC) -> (N, OC, OH, OW)
show("reshaped to y (N, OC, OH, OW)", y)
y_loops = conv2d_loops(x, w)
show("the nested loops give", y_loops)
print(f"max |difference| = {numpy.abs(y - y_loops).max():.1e}")

# -------------------------------------------------------------------------------------------
lesson.step("a real shape: batch, channels, padding 1, stride 2 (a ResNet downsampling conv)")
N, C, OC, H = lesson.pick((4, 8, 16, 16), (2, 3, 4, 7))
xb = rng.standard_normal((N, C, H, H))
wb = rng.standard_normal((OC, C, 3, 3))
bb = rng.standard_normal(OC)
xt, wt, bt = tinyres.tensor(xb), tinyres.tensor(wb), tinyres.tensor(bb)
F.conv2d(xt, wt, bt, stride=2, padding=1)          # warm-up: the first call loads the kernel
start = time.perf_counter()
yb = F.conv2d(xt, wt, bt, stride=2, padding=1)
fast = time.perf_counter() - start
start = time.perf_counter()
yb_loops = conv2d_loops(xb, wb, bb, stride=2, padding=1)
slow = time.perf_counter() - start
print(f"x {xb.shape}, w {wb.shape} -> y {tuple(yb.shape)}; im2col matrix "
      f"{F.im2col(xb, 3, 2, 1).shape}")
print(f"conv2d ran {which_kernel('conv2d_forward', xb)}")
print(f"conv2d {1e3 * fast:.2f} ms (after one warm-up call), nested loops {1e3 * slow:.1f} ms; "
      f"max relative difference {relative_error(yb.numpy(), yb_loops):.1e}")

# -------------------------------------------------------------------------------------------
lesson.step("backward: two more matrix products, and col2im")
gy = rng.standard_normal((1, 2, 2, 2))                       # dL/dy, as a loss would send it
gy_rows = gy.transpose(0, 2, 3, 1).reshape(-1, 2)           # (N*OH*OW, OC): rows again
gw = (gy_rows.T @ cols).reshape(w.shape)                    # dL/dW = gY^T cols
gcols = gy_rows @ w2                                         # dL/dcols = gY W2
gx = F.col2im(gcols, x.shape, (3, 3))                       # back onto the image
show("dL/dcols = gY @ W2  (N*OH*OW, C*KH*KW)", gcols)
show("dL/dx = col2im(dL/dcols)", gx)

xt, wt = tinyres.tensor(x, requires_grad=True), tinyres.tensor(w, requires_grad=True)
F.conv2d(xt, wt).backward(gy)
print(f"autograd's conv2d backward agrees: dL/dx {relative_error(xt.grad, gx):.1e}, "
      f"dL/dW {relative_error(wt.grad, gw):.1e} (max relative difference)")
xg = tinyres.tensor(xb[:1, :2, :5, :5].copy(), requires_grad=True)
wg = tinyres.tensor(wb[:3, :2].copy(), requires_grad=True)
report = gradcheck(lambda x, w: F.conv2d(x, w, stride=2, padding=1), [xg, wg])
print(f"gradcheck (stride 2, padding 1) against finite differences: {report}")

# -------------------------------------------------------------------------------------------
lesson.step("col2im adds where patches overlap")
counts = F.col2im(numpy.ones_like(cols), x.shape, (3, 3))
show("col2im(ones): in how many patches each pixel sits", counts)
print("The centre pixels sit in all 4 patches, the corners in 1: each receives the sum of")
print("the gradients of every patch it was copied into. That is why col2im must add, never")
print("overwrite. It is the adjoint of im2col: <im2col(x), Y> = <x, col2im(Y)> for all x, Y:")
Y = rng.standard_normal(cols.shape)
print(f"   <im2col(x), Y> = {(cols * Y).sum():.10f}")
print(f"   <x, col2im(Y)> = {(x * F.col2im(Y, x.shape, (3, 3))).sum():.10f}")

fig, ax = lesson.figure(figsize=(3.2, 3))
ax.imshow(counts[0, 0], cmap="Blues", vmin=0)
for (i, j), value in numpy.ndenumerate(counts[0, 0]):
    ax.text(j, i, f"{value:.0f}", ha="center", va="center")
ax.set_title("patches per pixel = col2im(ones)")
ax.set_xticks([]), ax.set_yticks([])
lesson.save(fig, "col2im_counts.png")
