"""Images → the network's input, exactly as `nas train` prepared them: the one copy of that code.

`nas.data` prepares every data set with these functions, and the exporter copies them into model.py, whose
`preprocess(images)` calls `preprocess_images` with the statistics recorded at training time. Only torch here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

RESIZE = "bilinear-antialias"  # how `fit_images` resizes; recorded with the statistics


def fit_images(images, size: int, channels: int) -> torch.Tensor:
    """uint8 (0–255) or float (0–1) images of any size → float32 N×C×size×size in [0, 1].

    Layouts: N×C×H×W, N×H×W×C (C of 1, 3 or 4 last) or N×H×W (grey). Resizing is bilinear with
    antialiasing; grey images are repeated to `channels`."""
    x = torch.as_tensor(images)
    if x.dim() == 3:
        x = x.unsqueeze(1)  # N×H×W: grey
    if x.dim() != 4:
        raise ValueError(f"expected N×C×H×W, N×H×W×C or N×H×W images, got shape {tuple(x.shape)}")
    if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.permute(0, 3, 1, 2)
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    if x.shape[-2:] != (size, size) and len(x):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=True)
    elif len(x) == 0:
        x = x.new_zeros(0, x.shape[1], size, size)
    if x.shape[1] != channels:
        if x.shape[1] != 1:
            raise ValueError(f"images have {x.shape[1]} channels; the network takes {channels}")
        x = x.repeat(1, channels, 1, 1)
    return x.contiguous()


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """Per-channel (x − mean) / std with the training split's statistics."""
    shape = (1, -1, 1, 1)
    return ((x - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)).contiguous()


def preprocess_images(images, size: int, channels: int, mean, std) -> torch.Tensor:
    """Raw images (see `fit_images`) → the normalized N×C×size×size batch the network was trained
    on."""
    return normalize(fit_images(images, size, channels), mean, std)
