"""Race tinyres's paths (reference NumPy, fast CPU kernels, CuPy) against PyTorch.

The same as `tinyres bench` (see tinyres/bench.py and docs/performance.md), runnable from a
checkout without installing:

    python tools/bench.py                              ResNet-20, batch 128, every path
    python tools/bench.py --model resnet56 --steps 20
    python tools/bench.py --profile                    where a training step's time goes
    python tools/bench.py --kernels                    each fast kernel against its twin
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinyres.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
