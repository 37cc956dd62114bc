"""The top-down augmentation of chapter 06, a whole batch at a time.

:class:`~course_lib.top_down.TopDownDataset` cuts each crop with OpenCV, item by item: the
way chapter 06 teaches it, and the reference.  Per item, the Python around the warp (the
draws, the checks, one small array after another, the collation) costs more than the warp
itself, and on a GPU that loop, not the network, sets the pace.  Two paths cut the same
crops for a whole batch at once:

* :class:`BatchedCrops` (the loader, the CPU's default in :func:`~course_lib.training.fit`):
  the loader asks for a batch (``__getitems__``); one OpenCV warp per image into one
  ``uint8`` array, and everything else (the crops' boxes, the keypoints, the flips, the
  targets, the normalisation) as array operations over the batch.  The result is the
  per-item path's batch exactly, bit for bit;
* :class:`BatchedAugmentation` (the training device, CUDA's default):

  1. the loader only reads: :class:`RawItems` gives each item's image (``uint8``,
     untouched), its keypoints and the crop the data set draws for it (``center, scale,
     rotation, flipped``: the same draws, from ``(seed, epoch, index)``);
     :func:`collate_raw` pads the images of a batch to a common size with zeros, which is
     what OpenCV's constant border shows outside an image anyway;
  2. the batch is warped on the device with ``grid_sample``: output pixel ``p_out`` (with
     the flip, column ``u`` read from ``W - 1 - u``) samples the image at

         p = M^{-1} p_out,      M = get_affine_transform(center, scale, rotation, input_size)

     bilinearly, with pixel centres at integer coordinates (``align_corners=True``), as
     ``cv2.warpAffine``; the keypoints go through ``M`` (and the flip with its pair swap),
     and the targets come from the codec, vectorised over the batch.

  The result agrees with the per-item batch to interpolation tolerance on the image
  (OpenCV interpolates with 5-bit fixed-point weights: about one grey level) and to float
  precision elsewhere.

Both give the batch :class:`~course_lib.top_down.TopDownDataset` and ``default_collate``
give, with the same keys (tests/test_batched_augment.py).  Shapes: ``N`` items, ``K``
joints, images ``(h, w)``, crops ``(H, W)``.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from course_lib.data import IMAGE_MEAN, IMAGE_STD, image_to_tensor
from course_lib.geometry import get_affine_transform, transform_points
from course_lib.keypoints import flip_permutation
from course_lib.top_down import TopDownDataset, collate_extra_fields, extra_fields


class BatchedCrops(torch.utils.data.Dataset):
    """The batches of a :class:`TopDownDataset`, each cut at once in the loader (OpenCV on the CPU).

    ``BatchedCrops(data).__getitems__(indices)`` equals
    ``default_collate([data[i] for i in indices])``, bit for bit: the same draws, the same
    OpenCV warp, the same arithmetic, over the batch instead of item by item.  A
    ``DataLoader`` calls ``__getitems__`` with each batch's indices; pass
    ``collate_fn=as_batch``, since what it returns is already the batch.  Bad items raise
    the error the per-item path raises for them.
    """

    def __init__(self, data: TopDownDataset) -> None:
        if not isinstance(data, TopDownDataset):
            raise TypeError(f"data must be a TopDownDataset, got {type(data).__name__}")
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def set_epoch(self, epoch: int) -> None:
        """The data set's epoch: the same augmentation draws as the per-item path."""
        self.data.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict:
        """Item ``index`` alone, as the data set cuts it."""
        return self.data[index]

    def __getitems__(self, indices: Sequence[int]) -> dict:
        """The collated batch of the items ``indices`` (see the class docstring)."""
        data, indices = self.data, [int(i) for i in indices]
        samples = [data.samples[i] for i in indices]
        images, keypoints, visibility, boxes = self._stacked(samples, indices)
        center, scale, rotation, flipped = data.crop_parameters_batch(indices, boxes, keypoints, visibility)
        height, width = data.input_size
        forward = get_affine_transform(center, scale, rotation, (height, width))  # (N, 2, 3) image -> crop
        crops = np.empty((len(indices), height, width, 3), dtype=np.uint8)
        for n, image in enumerate(images):  # the one per-item step: OpenCV warps one image at a time
            cv2.warpAffine(image, forward[n], (width, height), dst=crops[n], flags=cv2.INTER_LINEAR)
        crops[flipped] = crops[flipped, :, ::-1]  # the mirror x' = W - 1 - x
        points, crop_visibility = crop_keypoints(keypoints, visibility, forward, flipped, (height, width),
                                                 data.flip_pairs)
        heatmaps, weights = data.codec.encode(points, crop_visibility)
        batch = {
            "image": image_to_tensor(crops),
            "heatmaps": torch.from_numpy(heatmaps),
            "target_weight": torch.from_numpy(weights),
            "keypoints": torch.from_numpy(points.astype(np.float32)),
            "visibility": torch.from_numpy(crop_visibility.astype(np.int64)),
            "keypoints_image": torch.from_numpy(keypoints.astype(np.float32)),
            "visibility_image": torch.from_numpy(visibility),
            "center": torch.from_numpy(center.astype(np.float32)),
            "scale": torch.from_numpy(scale.astype(np.float32)),
            "rotation": torch.from_numpy(rotation.astype(np.float32)),
            "flipped": torch.from_numpy(flipped),
            "box": torch.from_numpy(boxes.astype(np.float32)),
        }
        return {**batch, **collate_extra_fields(samples)}

    def _stacked(self, samples: list, indices: list[int]) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
        """``images`` (a list), ``keypoints (N, K, 2)``, ``visibility (N, K)`` int64, ``boxes (N, 4)``, checked.

        The checks of the per-item path, over the batch; when one fails, the items go
        through the per-item path, which raises the bad item's own error.
        """
        try:
            images = [sample["image"] for sample in samples]
            keypoints = np.array([sample["keypoints"] for sample in samples], dtype=np.float64)
            visibility = np.array([sample["visibility"] for sample in samples])
            boxes = np.array([sample["box"] for sample in samples], dtype=np.float64)
            fine = (keypoints.ndim == 3 and keypoints.shape[2] == 2 and visibility.shape == keypoints.shape[:2]
                    and visibility.dtype.kind in "biuf" and boxes.shape == (len(samples), 4)
                    and np.isfinite(keypoints).all() and np.isfinite(visibility).all() and np.isfinite(boxes).all()
                    and (boxes[:, 2:] > 0).all()
                    and all(type(image) is np.ndarray and image.dtype == np.uint8 and image.ndim == 3
                            and image.shape[2] == 3 and image.size > 0 for image in images))
        except (TypeError, KeyError, ValueError, IndexError):
            fine = False
        if not fine:
            for index in indices:
                self.data[index]  # raises the bad item's error
            shapes = [np.shape(sample["keypoints"]) for sample in samples]
            raise ValueError(f"the items {indices} cannot form one batch: keypoints of shapes {shapes}")
        return images, keypoints, visibility.astype(np.int64), boxes


def as_batch(batch: dict) -> dict:
    """The ``collate_fn`` of :class:`BatchedCrops`: its ``__getitems__`` already returns the batch."""
    return batch


def crop_keypoints(keypoints: np.ndarray, visibility: np.ndarray, forward: np.ndarray, flipped: np.ndarray,
                   input_size: tuple[int, int], flip_pairs: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints ``(N, K, 2)`` in image pixels -> crop pixels after the warp ``forward`` ``(N, 2, 3)`` and the flip.

    A flipped item's points are mirrored, ``x' = W - 1 - x``, and its left/right joints swap
    rows (:func:`~course_lib.geometry.flip_keypoints`); a labelled joint the crop cuts off
    (outside ``-0.5 <= x <= W - 0.5``, same for y) gets ``v = 0``.  Returns the points and
    the flags ``(N, K)``.
    """
    height, width = input_size
    points = transform_points(keypoints, forward)  # (N, K, 2)
    permutation = flip_permutation(points.shape[1], flip_pairs)
    mirrored = np.stack([width - 1 - points[..., 0], points[..., 1]], axis=-1)[:, permutation]
    points = np.where(flipped[:, None, None], mirrored, points)
    visibility = np.where(flipped[:, None], visibility[:, permutation], visibility)
    x, y = points[..., 0], points[..., 1]
    inside = (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    return points, np.where(inside, visibility, 0)


class RawItems(torch.utils.data.Dataset):
    """What the loader reads for the batched path: item ``i`` of a :class:`TopDownDataset`, uncut.

    Each item: ``image`` ``uint8 (h, w, 3)`` as stored, ``keypoints_image`` ``float64 (K, 2)``,
    ``visibility_image`` ``int64 (K,)``, ``center``, ``scale`` ``float64 (2,)``, ``rotation``
    ``float64 ()``, ``flipped`` ``bool ()``, ``box`` and the extra keys of the sample.
    """

    def __init__(self, data: TopDownDataset) -> None:
        if not isinstance(data, TopDownDataset):
            raise TypeError(f"data must be a TopDownDataset, got {type(data).__name__}")
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def set_epoch(self, epoch: int) -> None:
        """The data set's epoch: the same augmentation draws as the per-item path."""
        self.data.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict:
        sample = self.data.samples[index]
        image, keypoints, visibility, box = TopDownDataset._check_sample(sample, index)
        center, scale, rotation, flipped = self.data.crop_parameters(index, box, keypoints, visibility)
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "keypoints_image": torch.from_numpy(keypoints),
            "visibility_image": torch.from_numpy(visibility),
            "center": torch.from_numpy(np.asarray(center, dtype=np.float64)),
            "scale": torch.from_numpy(np.asarray(scale, dtype=np.float64)),
            "rotation": torch.tensor(rotation, dtype=torch.float64),
            "flipped": torch.tensor(flipped),
            "box": torch.from_numpy(box.astype(np.float32)),
        }
        return {**item, **extra_fields(sample)}


def collate_raw(items: Sequence[dict]) -> dict:
    """Batch :class:`RawItems`: images zero-padded to the largest ``(h, w)`` -> ``uint8 (N, h, w, 3)``."""
    height = max(item["image"].shape[0] for item in items)
    width = max(item["image"].shape[1] for item in items)
    images = torch.zeros((len(items), height, width, 3), dtype=torch.uint8)
    for n, item in enumerate(items):
        h, w = item["image"].shape[:2]
        images[n, :h, :w] = item["image"]
    rest = torch.utils.data.default_collate([{k: v for k, v in item.items() if k != "image"} for item in items])
    return {"image": images, **rest}


class BatchedAugmentation:
    """Cut the crops and draw the targets of a :func:`collate_raw` batch on ``device``.

    ``BatchedAugmentation(data, device)(raw_batch)`` returns the batch the per-item path
    gives (see the module docstring), every tensor on ``device``; ``.raw`` and ``.collate``
    are what the loader reads with (:class:`RawItems`, :func:`collate_raw`).
    """

    def __init__(self, data: TopDownDataset, device: str | torch.device = "cpu", channels_last: bool = False) -> None:
        self.raw = RawItems(data)
        self.collate = collate_raw
        self.codec, self.flip_pairs = data.codec, data.flip_pairs
        self.device, self.channels_last = torch.device(device), bool(channels_last)
        # float64 keypoints where the device has it, so that MSRA's rounding of the centres agrees exactly
        self.dtype = torch.float32 if self.device.type == "mps" else torch.float64

    def __call__(self, raw: dict) -> dict:
        flipped = raw["flipped"].bool()
        keypoints, visibility = self.crop_keypoints(raw, flipped)  # (N, K, 2), (N, K) on the CPU
        heatmaps, weights = self.codec.encode(keypoints.to(self.device, self.dtype), visibility.to(self.device))
        batch = {key: value.to(self.device, non_blocking=True) if isinstance(value, torch.Tensor) else value
                 for key, value in raw.items() if key != "image"}
        batch.update({
            "image": self.warp(raw["image"], raw, flipped),
            "heatmaps": heatmaps.float(), "target_weight": weights.float(),
            "keypoints": keypoints.float().to(self.device), "visibility": visibility.to(self.device),
            "center": raw["center"].float().to(self.device), "scale": raw["scale"].float().to(self.device),
            "rotation": raw["rotation"].float().to(self.device),
            "keypoints_image": raw["keypoints_image"].float().to(self.device),
        })
        return batch

    def crop_keypoints(self, raw: dict, flipped: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints in crop pixels after the warp and the flip, and the flags of the joints still in the crop."""
        forward = get_affine_transform(raw["center"].numpy(), raw["scale"].numpy(), raw["rotation"].numpy(),
                                       self.codec.input_size)  # (N, 2, 3)
        points, visibility = crop_keypoints(raw["keypoints_image"].double().numpy(), raw["visibility_image"].numpy(),
                                            forward, flipped.numpy(), self.codec.input_size, self.flip_pairs)
        return torch.from_numpy(points), torch.from_numpy(visibility)

    def warp(self, images: torch.Tensor, raw: dict, flipped: torch.Tensor) -> torch.Tensor:
        """``uint8 (N, h, w, 3)`` images -> normalised crops ``(N, 3, H, W)`` on the device (bilinear, zero border)."""
        height, width = self.codec.input_size
        inverse = get_affine_transform(raw["center"].numpy(), raw["scale"].numpy(), raw["rotation"].numpy(),
                                       (height, width), inverse=True)  # (N, 2, 3): crop -> image
        inverse = torch.from_numpy(inverse).to(self.device, torch.float32)
        columns = torch.arange(width, device=self.device, dtype=torch.float32)
        rows = torch.arange(height, device=self.device, dtype=torch.float32)
        u = torch.where(flipped.to(self.device)[:, None], width - 1 - columns, columns)  # (N, W): the flip
        v = rows.expand(len(u), height)  # (N, H)
        x = inverse[:, 0, 0, None, None] * u[:, None, :] + inverse[:, 0, 1, None, None] * v[:, :, None] \
            + inverse[:, 0, 2, None, None]  # (N, H, W) image pixels
        y = inverse[:, 1, 0, None, None] * u[:, None, :] + inverse[:, 1, 1, None, None] * v[:, :, None] \
            + inverse[:, 1, 2, None, None]
        source = images.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()  # (N, 3, h, w)
        h, w = source.shape[-2:]
        grid = torch.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], dim=-1)  # (N, H, W, 2)
        crops = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        crops = crops.round_().clamp_(0, 255)  # as OpenCV's uint8 output
        mean = torch.tensor(IMAGE_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGE_STD, device=self.device).view(1, 3, 1, 1)
        crops = (crops / 255.0 - mean) / std
        return crops.contiguous(memory_format=torch.channels_last) if self.channels_last else crops
