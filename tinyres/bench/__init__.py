"""`tinyres bench`: how long does one ResNet training step take, on every path, against PyTorch?

One training step is forward, cross-entropy, backward and an SGD-momentum update on one batch of
random images; one eval forward is the model in eval mode under no_grad. The paths raced:

    reference    tinyres on NumPy with the readable kernels (TINYRES_KERNELS=reference)
    fast         tinyres on NumPy with the Numba kernels of tinyres.kernels.cpu (the default)
    cupy         tinyres on a GPU (where CuPy sees one)
    torch        PyTorch on the CPU, the same network (torch_resnet.py; where torch is installed)
    torch-cuda   PyTorch on the GPU (where it sees one)

Times drift from run to run on a shared machine, so the paths are timed *interleaved* in one
process (A B C A B C ...), each timed call after a short pause (race.py), and compared by their
medians over the same stretch of time; the ratio column divides by PyTorch's median. Peak memory
is measured separately, in a fresh process per path (Python cannot see what BLAS and Numba
allocate, so tracemalloc would miss most of it): the resident set high-water mark (VmHWM) of
three training steps, above the resident size just before them (the libraries, the model, the
batch and the optimizer's state, after two warm-up steps and malloc_trim), the mark reset between
the two with /proc/self/clear_refs.

    tinyres bench                                  ResNet-20, batch 128, every available path
    tinyres bench --model resnet56 --steps 20      more depth, more steps
    tinyres bench --profile                        where a step's time goes, op by op
    tinyres bench --kernels                        each fast kernel against its reference twin

`--profile` times every Function's forward and backward (by wrapping them for the duration of the
profile, see profile.py), the optimizer, and calls the rest "Python and graph overhead".

The rooms of this package (the benchmark is a tool: nothing of the engine imports it; the CLI
imports it only when `tinyres bench` runs):

    options.py       the command's options (all the CLI imports until `tinyres bench` runs)
    command.py       the race's report, `--profile`, `--kernels`; `python -m tinyres.bench`
    runners.py       the racers: tinyres (reference, fast, cupy) and PyTorch (torch, torch-cuda)
    torch_resnet.py  the one PyTorch CIFAR ResNet (also tools/export_pytorch_resnet.py's)
    race.py          interleaved timing; peak memory in a fresh process per path
    profile.py       --profile: per-op times, and the fast convolutions' GEMM floor
    twins.py         --kernels: each fast kernel against its readable twin
"""
