"""``tinyres.nn.functional``: the functional floor under PyTorch's name.

    import tinyres.nn.functional as F        # as `import torch.nn.functional as F`

The functions live in `tinyres/functional/` (one file per op family, where a learner reads
them); this module is the same objects, so code written for PyTorch finds them where it looks.
"""
from tinyres.functional import (adaptive_avg_pool2d, avg_pool2d, batch_norm, conv2d,  # noqa: F401
                                cross_entropy, dropout, global_avg_pool2d, linear,
                                local_response_norm, log_softmax, max_pool2d, pad, relu, softmax)

__all__ = ["adaptive_avg_pool2d", "avg_pool2d", "batch_norm", "conv2d", "cross_entropy",
           "dropout", "global_avg_pool2d", "linear", "local_response_norm", "log_softmax",
           "max_pool2d", "pad", "relu", "softmax"]
