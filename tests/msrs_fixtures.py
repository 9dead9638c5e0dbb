"""The three bundled MSRS pairs with their detection boxes, as a small training source with masks."""

from pathlib import Path

import cv2

DATA = Path(__file__).parent / 'data'
MSRS_STEMS = ('00091D', '00718N', '01028N')


def msrs_source(folder: Path, size: tuple[int, int] = (160, 120)) -> dict:
    """
    Write the MSRS pairs resized to `size` (W, H) into folder/{ir,vi}; return a config source with box masks.

    Resizing (not cropping) keeps the normalised YOLO boxes valid, and the small frames keep
    full-size validation in the training tests to a fraction of a second.
    """
    for sub in ('ir', 'vi'):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for stem in MSRS_STEMS:
            image = cv2.imread(str(DATA / 'pairs' / sub / f'{stem}.png'), cv2.IMREAD_UNCHANGED)
            cv2.imwrite(str(folder / sub / f'{stem}.png'), cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    return {'name': 'msrs', 'ir': str(folder / 'ir'), 'vis': str(folder / 'vi'),
            'masks': str(DATA / 'boxes'), 'mask_format': 'yolo_boxes'}
