"""Image files: pairing two folders by stem, reading, and crash-safe writing."""

import os
from dataclasses import dataclass, field
from pathlib import Path
import tempfile

import cv2
import numpy as np

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


@dataclass(frozen=True)
class ImageListing:
    """The image files of a folder by stem, and the files hidden by another file with the same stem."""

    files: dict[str, Path]                                                # stem -> the file used
    shadowed: list[tuple[Path, Path]] = field(default_factory=list)       # (ignored file, the file used instead)


@dataclass(frozen=True)
class FolderPairing:
    """Result of matching an IR and a visible folder by file stem."""

    pairs: list[tuple[Path, Path]]
    ir_only: list[Path]
    vis_only: list[Path]
    shadowed: list[tuple[Path, Path]] = field(default_factory=list)       # in either folder, as in ImageListing


def scan_images(folder: Path) -> ImageListing:
    """Map file stem -> path for every image file in folder (not recursive); the first name in sorted order wins."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'not a folder: {folder}')
    listing = ImageListing({})
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            if path.stem in listing.files:
                listing.shadowed.append((path, listing.files[path.stem]))
            else:
                listing.files[path.stem] = path
    return listing


def list_images(folder: Path) -> dict[str, Path]:
    """Map file stem -> path for every image file in folder (see scan_images for the files it leaves out)."""
    return scan_images(folder).files


def shadowed_reason(ignored: Path, used: Path) -> str:
    """Why a file was left out: another file of its folder has the same stem."""
    return f'same name as {used.name} in {used.parent} (only one file per name is used: {used.name})'


def pair_folders(ir_dir: Path, vis_dir: Path) -> FolderPairing:
    """Pair files of two folders by stem (extensions may differ: FLIR IR .jpg with .png visible)."""
    ir_listing, vis_listing = scan_images(ir_dir), scan_images(vis_dir)
    ir, vis = ir_listing.files, vis_listing.files
    common = sorted(ir.keys() & vis.keys())
    return FolderPairing(
        pairs=[(ir[s], vis[s]) for s in common],
        ir_only=[ir[s] for s in sorted(ir.keys() - vis.keys())],
        vis_only=[vis[s] for s in sorted(vis.keys() - ir.keys())],
        shadowed=ir_listing.shadowed + vis_listing.shadowed)


def read_image(path: Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """Read an image or raise a ValueError naming the file (cv2.imread returns None silently)."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise ValueError(f'cannot decode image file {path}')
    return image


def read_ir(path: Path) -> np.ndarray:
    """Read an infrared image as a single plane, keeping 16-bit depth."""
    image = read_image(path, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_GRAYSCALE)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image


def read_visible(path: Path) -> np.ndarray:
    """Read a visible image as uint8 BGR (H, W, 3) or gray (H, W), whichever the file holds."""
    image = read_image(path, cv2.IMREAD_UNCHANGED)
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / float(np.iinfo(image.dtype).max))
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    return image


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the target folder, then rename: readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_image_atomic(path: Path, image: np.ndarray) -> None:
    """Encode by the file's suffix and write atomically."""
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix or '.png', image)
    if not ok:
        raise ValueError(f'cannot encode image for {path}')
    write_bytes_atomic(path, encoded.tobytes())
