"""Floor 4: the layers of a CNN as differentiable functions, one file per op family.

    import tinyres.functional as F
    y = F.relu(F.batch_norm(F.conv2d(x, w, padding=1), running_mean, running_var, ...))

Each file shows the readable NumPy math of its op, forward beside backward. The names,
argument orders and defaults are torch.nn.functional's (``tinyres.nn.functional`` is this
package, under PyTorch's name).
"""
from tinyres.functional.conv import conv2d, im2col, col2im  # noqa: F401
from tinyres.functional.pooling import (max_pool2d, avg_pool2d, global_avg_pool2d,  # noqa: F401
                                        adaptive_avg_pool2d)
from tinyres.functional.batchnorm import batch_norm  # noqa: F401
from tinyres.functional.activation import relu  # noqa: F401
from tinyres.functional.linear import linear  # noqa: F401
from tinyres.functional.loss import log_softmax, softmax, cross_entropy  # noqa: F401
from tinyres.functional.padding import pad  # noqa: F401
from tinyres.functional.dropout import dropout  # noqa: F401
from tinyres.functional.lrn import local_response_norm  # noqa: F401
