"""Preprocessing and data augmentation, as in section 4.2 of the ResNet paper.

    "The network inputs are 32x32 images, with the per-pixel mean subtracted. [...] We follow
     the simple data augmentation in [24] for training: 4 pixels are padded on each side, and a
     32x32 crop is randomly sampled from the padded image or its horizontal flip. For testing,
     we only evaluate the single view of the original 32x32 image."

Every transform here works on a whole batch at once, float32 (N, C, H, W), with no Python loop
over images: random crops are one fancy-indexing gather from a sliding-window view, flips one
``numpy.where``. Random transforms take an explicit ``numpy.random.Generator`` so that the same
generator state gives the same batch, which the DataLoader relies on for exact resume.

A random transform is two steps, kept apart so a test (or a learner) can see the choice made:

    params = transform.sample(N, rng)      # e.g. the crop offsets, or which images to flip
    out = transform.apply(images, params)  # deterministic
    out = transform(images, rng)           # the two together

Order, as torchvision's usual CIFAR recipe (pad + crop, flip on the raw image, then ToTensor's
/255, then Normalize): the DataLoader turns uint8 into float32 in [0, 1] (``to_float32``), then

    Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), Normalize(mean, std)])

Padding is zero *before* normalisation, so padded pixels are black (raw value 0), exactly as
torchvision pads the raw image. Dividing by 255 commutes with cropping and flipping, so doing it
first changes nothing but lets every transform take one dtype. (Put Normalize first and the
padding would instead be the mean colour.)

Two normalisations are offered: the paper's per-pixel mean subtraction (a mean *image*, computed
on the training set) and the per-channel mean/std normalisation of most modern re-implementations,
which the PyTorch reference recipe of this project uses.
"""
import numpy
from numpy.lib.stride_tricks import sliding_window_view

# Per-channel mean and standard deviation of the 50,000 CIFAR-10 training images, in [0, 1].
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def to_float32(images):
    """uint8 (N, C, H, W) in 0..255 → float32 (N, C, H, W) in [0, 1], as torchvision's
    ToTensor: x / 255."""
    if images.dtype != numpy.uint8:
        raise TypeError(f"to_float32 expects uint8 images (0..255), got {images.dtype}")
    return images.astype(numpy.float32) / numpy.float32(255)


def _check_batch(images, who):
    if not (isinstance(images, numpy.ndarray) and images.dtype == numpy.float32
            and images.ndim == 4):
        raise TypeError(f"{who} expects a float32 NumPy batch of shape (N, C, H, W), got "
                        f"{getattr(images, 'dtype', type(images).__name__)} of shape "
                        f"{getattr(images, 'shape', '?')}")


class Compose:
    """Apply transforms one after the other, all drawing from the same generator."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, images, rng):
        for transform in self.transforms:
            images = transform(images, rng)
        return images

    def __repr__(self):
        return f"Compose({self.transforms})"


class Normalize:
    """Per-channel normalisation: out[n, c] = (x[n, c] - mean[c]) / std[c]."""

    def __init__(self, mean=CIFAR10_MEAN, std=CIFAR10_STD):
        self.mean = numpy.asarray(mean, dtype=numpy.float32).reshape(-1, 1, 1)   # (C, 1, 1)
        self.std = numpy.asarray(std, dtype=numpy.float32).reshape(-1, 1, 1)     # (C, 1, 1)
        if self.mean.shape != self.std.shape or (self.std <= 0).any():
            raise ValueError(f"Normalize needs one mean and one positive std per channel, got "
                             f"mean={mean} std={std}")

    def __call__(self, images, rng=None):
        _check_batch(images, "Normalize")
        if images.shape[1] != len(self.mean):
            raise ValueError(f"Normalize has {len(self.mean)} channel means, the batch has "
                             f"{images.shape[1]} channels (shape {images.shape})")
        return (images - self.mean) / self.std

    def __repr__(self):
        return f"Normalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"


class PerPixelMeanSubtraction:
    """The paper's preprocessing: out[n] = x[n] - mean_image, with mean_image (C, H, W) the
    average training image (each pixel and channel has its own mean; no division by a std)."""

    def __init__(self, mean_image):
        self.mean_image = numpy.asarray(mean_image, dtype=numpy.float32)        # (C, H, W)
        if self.mean_image.ndim != 3:
            raise ValueError(f"PerPixelMeanSubtraction expects a mean image (C, H, W), got "
                             f"shape {self.mean_image.shape}")

    @classmethod
    def from_dataset(cls, dataset):
        """The mean image of a training set's uint8 images, in the [0, 1] scale of to_float32.

        Averaged with a float64 accumulator, without a float64 copy of the whole set."""
        return cls(dataset.images.mean(axis=0, dtype=numpy.float64) / 255)

    def __call__(self, images, rng=None):
        _check_batch(images, "PerPixelMeanSubtraction")
        if images.shape[1:] != self.mean_image.shape:
            raise ValueError(f"PerPixelMeanSubtraction: images are (N, C, H, W) = {images.shape}, "
                             f"the mean image is {self.mean_image.shape}")
        return images - self.mean_image

    def __repr__(self):
        return f"PerPixelMeanSubtraction(mean_image of shape {self.mean_image.shape})"


class RandomCrop:
    """Zero-pad each side by ``padding``, then cut a random size x size window from each image.

    With padding 4 and size 32 an image is shifted by (dy, dx) in {-4..4}^2, uniformly, the
    uncovered border filled with zeros. Offsets are drawn per image: (N, 2) integers in
    [0, H + 2*padding - size].
    """

    def __init__(self, size=32, padding=4):
        if size <= 0 or padding < 0:
            raise ValueError(f"RandomCrop needs size > 0 and padding >= 0, got size={size}, "
                             f"padding={padding}")
        self.size, self.padding = size, padding

    def sample(self, num_images, rng, image_shape):
        """Top-left corners (N, 2) = (row, column) of the crops inside the padded (H, W) images."""
        height, width = image_shape[-2] + 2 * self.padding, image_shape[-1] + 2 * self.padding
        if height < self.size or width < self.size:
            raise ValueError(f"RandomCrop({self.size}) does not fit images of shape "
                             f"{tuple(image_shape)} padded by {self.padding}")
        rows = rng.integers(0, height - self.size + 1, size=num_images)
        columns = rng.integers(0, width - self.size + 1, size=num_images)
        return numpy.stack([rows, columns], axis=1)

    def apply(self, images, offsets):
        """images (N, C, H, W), offsets (N, 2) → crops (N, C, size, size)."""
        _check_batch(images, "RandomCrop")
        p = self.padding
        padded = numpy.pad(images, ((0, 0), (0, 0), (p, p), (p, p)))   # (N, C, H+2p, W+2p), zeros
        # windows[n, c, i, j] is the size x size window whose top-left corner is (i, j): a view,
        # no copy. Shape (N, C, H+2p-size+1, W+2p-size+1, size, size).
        windows = sliding_window_view(padded, (self.size, self.size), axis=(2, 3))
        n = numpy.arange(len(images))
        # Index arrays on axes 0, 2, 3 with a slice between them: NumPy puts the broadcast
        # index dimension (N) first, then the sliced C, then the window: (N, C, size, size).
        return windows[n, :, offsets[:, 0], offsets[:, 1]]

    def __call__(self, images, rng):
        return self.apply(images, self.sample(len(images), rng, images.shape))

    def __repr__(self):
        return f"RandomCrop({self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability p (chosen independently per image)."""

    def __init__(self, p=0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip needs a probability 0 <= p <= 1, got {p}")
        self.p = p

    def sample(self, num_images, rng):
        """Which images to flip: bool (N,)."""
        return rng.random(num_images) < self.p

    def apply(self, images, flip):
        """images (N, C, H, W), flip bool (N,) → the flagged images mirrored along W."""
        _check_batch(images, "RandomHorizontalFlip")
        return numpy.where(flip[:, None, None, None], images[..., ::-1], images)

    def __call__(self, images, rng):
        return self.apply(images, self.sample(len(images), rng))

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


def cifar_train_transform(mean=CIFAR10_MEAN, std=CIFAR10_STD):
    """The paper's training augmentation with per-channel normalisation (the reference recipe)."""
    return Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), Normalize(mean, std)])


def cifar_test_transform(mean=CIFAR10_MEAN, std=CIFAR10_STD):
    """Testing: "only the single view of the original 32x32 image", normalised."""
    return Normalize(mean, std)
