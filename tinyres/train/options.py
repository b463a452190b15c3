"""The options of `tinyres train` and `tinyres eval`, and the check of --data made before any
work (the CLI builds its parser from these; the lab's options share --data's check)."""
from pathlib import Path

from tinyres import backend
from tinyres.errors import UserError
from tinyres.options import natural_int, number_in, positive_int, thread_count

TRAIN_DESCRIPTION = (
    "Train on CIFAR-10 with the recipe of He et al. (2015) section 4.2, scaled to the epochs "
    "asked: SGD momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 50 % and "
    "75 % of the iterations, pad-crop-flip augmentation. Without --data it uses the full "
    "CIFAR-10 from the cache ($TINYRES_DATA or ~/.cache/tinyres) if present, else the real "
    "sample bundled with tinyres (5,482 training and 1,017 test images; offline). The run "
    "directory gets metrics.csv (per epoch), iterations.csv (per step) and curves.png "
    "(training error per iteration, test error per epoch, lr drops marked: the paper's Fig. 6 "
    "for one net).")


def add_train_arguments(train):
    """The options of `tinyres train`."""
    # The settings of a run default to None here (TrainConfig's defaults apply), so that
    # --resume can tell which were given and refuse those that differ from the run's own.
    train.add_argument("--model", help="model name (default resnet20)")
    train.add_argument("--epochs", type=positive_int,
                       help="epochs to train (default 5: about a minute on 2 cores on the "
                            "bundled sample); with --resume, a number other than the run's "
                            "re-plans its schedule for that many")
    train.add_argument("--batch-size", type=positive_int, help="default 128")
    train.add_argument("--lr", type=number_in(0, low_open=True),
                       help="initial learning rate (default: the model's recipe, 0.1 for the "
                            "ResNets as in the paper, 0.02 for VGG)")
    train.add_argument("--momentum", type=number_in(0, 1), help="default 0.9")
    train.add_argument("--weight-decay", type=number_in(0), help="default 1e-4")
    train.add_argument("--warmup", type=natural_int, metavar="ITERATIONS",
                       help="iterations at lr 0.01 first (the paper's ResNet-110 warm-up)")
    train.add_argument("--normalize", choices=["channel", "pixel"],
                       help="per-channel mean/std (default), or the paper's per-pixel mean "
                            "subtraction")
    train.add_argument("--data", help="a folder holding CIFAR-10's cifar-10-batches-py/, or "
                                      "'sample' for the bundled sample (default: the cache, "
                                      "else the sample)")
    train.add_argument("--download", action="store_true",
                       help="download CIFAR-10 into --data DIR if it is not there")
    train.add_argument("--limit-train", type=positive_int, metavar="N",
                       help="train on the first N images only (quick runs)")
    train.add_argument("--seed", type=natural_int, help="default 0")
    train.add_argument("--out", help="run directory (default runs/MODEL); must be new or empty "
                                     "unless --resume or --overwrite")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its checkpoint")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the run in --out (its checkpoint, metrics and curves)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--sync-bn", action="store_true", default=None,
                       help="under mpiexec: batch norm with the statistics of the whole batch "
                            "over all ranks (default: each rank's own slice)")
    train.add_argument("--collective-timeout", type=number_in(0, low_open=True),
                       metavar="SECONDS",
                       help="under mpiexec: end the job, naming the rank that did not arrive, "
                            "when a collective waits longer than this (default "
                            "$TINYRES_COLLECTIVE_TIMEOUT, else 600)")
    add_engine_arguments(train)


def add_eval_arguments(evaluate):
    """The options of `tinyres eval`."""
    evaluate.add_argument("--checkpoint", required=True,
                          help="a checkpoint.npz, or the run directory holding it")
    evaluate.add_argument("--data", help="CIFAR-10 folder (default: the run's data)")
    add_engine_arguments(evaluate)


def add_engine_arguments(command):
    """--backend, --kernels and --threads (applied by tinyres.environment.set_engine)."""
    command.add_argument("--backend", choices=backend.BACKENDS)
    command.add_argument("--kernels", choices=["fast", "reference"])
    command.add_argument("--threads", type=thread_count, metavar="N",
                         help="threads for BLAS and the fast kernels; the readable path "
                              "runs on one (default: every core this process may use)")


def check_data_option(data, download=False):
    """--data before any work: 'sample', or a folder holding CIFAR-10 (or to download it into
    with --download). Nothing is created here."""
    from tinyres.data.cifar import FOLDER_NAME, META_FILE
    if data in (None, "sample") or download:
        return
    folder = Path(data).expanduser()
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "does not exist"
    elif not any(folder.iterdir()):
        problem = "is an empty folder"
    elif not ((folder / FOLDER_NAME).is_dir() or (folder / META_FILE).is_file()):
        problem = f"holds no CIFAR-10 ({FOLDER_NAME}/ is not there)"
    else:
        return
    raise UserError(f"--data {data} {problem}: the full CIFAR-10 data set is missing. Download "
                    f"it there (170 MB) by adding --download, point --data at the folder that "
                    f"holds {FOLDER_NAME}/, or train offline on the small bundled sample with "
                    f"--data sample")
