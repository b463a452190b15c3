"""The benchmark's machinery (tinyres/bench/; nothing is timed against a threshold here)."""
from fractions import Fraction

import pytest

from tinyres.bench.command import format_table
from tinyres.bench.profile import conv_calls, conv_gemm_flops, conv_gemm_time, profile_step
from tinyres.bench.runners import TinyresRunner
from tinyres.functional.conv import Conv2d
from tinyres.models import get_model, summary

pytest.importorskip("tinyres.kernels.cpu", reason="the fast path needs Numba")


def test_bench_profile_accounts_for_the_step_and_restores_the_ops():
    forward, backward = Conv2d.forward, Conv2d.backward
    runner = TinyresRunner("fast", "resnet20", batch_size=2)
    rows = dict(profile_step(runner, steps=1))
    assert Conv2d.forward is forward and Conv2d.backward is backward
    assert rows["conv forward"] > 0 and rows["conv backward"] > 0
    assert rows["batch norm forward"] > 0 and rows["SGD momentum update"] > 0
    parts = sum(seconds for label, seconds in rows.items() if label != "whole step")
    assert parts == pytest.approx(rows["whole step"])
    table = format_table(2, {"fast": [0.2], "torch": [0.1]}, {"fast": [0.1], "torch": [0.1]},
                         {}, "torch")
    assert "2.00x" in table and "1.00x" in table


def test_bench_records_every_conv_of_a_step_for_the_gemm_floor():
    """ResNet-20 has 19 convolutions (the stem, 2 per block in 9 blocks): each is called once
    forward and once backward, and the stem's backward needs no input gradient."""
    forward, backward = Conv2d.forward, Conv2d.backward
    runner = TinyresRunner("fast", "resnet20", batch_size=2)
    calls = conv_calls(runner)
    assert Conv2d.forward is forward and Conv2d.backward is backward
    forwards = [c for c in calls if c[4] is None]
    backwards = [c for c in calls if c[4] is not None]
    assert len(forwards) == len(backwards) == 19
    assert forwards[0][:2] == ((2, 3, 32, 32), (16, 3, 3, 3))
    assert [c[4] for c in backwards].count(False) == 1            # the stem: no gx
    assert conv_gemm_time(calls, steps=1) > 0
    # 2 flops per multiply-add, 3 products per conv (forward, weight and input gradients) but
    # no input gradient for the stem; Winograd's F(4x4, 3x3) (every output of ResNet-20 splits
    # into 4x4 tiles) does 36 multiply-adds per 4x4 output tile where a 3x3 filter does 144:
    # 1/4 of them, for every conv but the two at stride 2
    rows = [row for row in summary(get_model("resnet20"), (3, 32, 32), show=False).rows
            if row.kind == "Conv2d"]
    products = [2] + [3] * (len(rows) - 1)
    at_stride_2 = [i > 0 and row.output_shape[-1] < rows[i - 1].output_shape[-1]
                   for i, row in enumerate(rows)]
    assert at_stride_2.count(True) == 2
    share = [Fraction(1) if stride_2 else Fraction(1, 4) for stride_2 in at_stride_2]
    expected = sum(2 * 2 * row.macs * n * f for row, n, f in zip(rows, products, share))
    assert conv_gemm_flops(calls) == expected
