"""
The baselines `fusion-ros calibrate` is compared with: feature matching + RANSAC, and ECC.

Both are what a user would try first with OpenCV. Each returns an IR -> visible homography or
None when it cannot produce one (too few matches, ECC failing to run), which the benchmark counts
as a refusal.
"""

from typing import Optional, Sequence

import cv2
import numpy as np

from fusion_ros.core.calibration.geometry import resample_matrix
from fusion_ros.core.calibration.orientation import gradients, to_gray_float


def _uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(to_gray_float(image) * 255, 0, 255).astype(np.uint8)


def feature_homography(ir_frames: Sequence[np.ndarray], vis_frames: Sequence[np.ndarray],
                       kind: str = 'sift', min_inliers: int = 12) -> Optional[np.ndarray]:
    """
    Match keypoints (SIFT or ORB) of every pair, pool the matches, fit one homography with RANSAC.

    Lowe's ratio test (0.8) keeps distinctive matches; the IR is upsampled to the visible scale
    first so both detectors see structures of one size.
    """
    detector = cv2.SIFT_create(4000) if kind == 'sift' else cv2.ORB_create(4000)
    norm = cv2.NORM_L2 if kind == 'sift' else cv2.NORM_HAMMING
    matcher = cv2.BFMatcher(norm)
    src, dst = [], []
    for ir, vis in zip(ir_frames, vis_frames):
        ir8, vis8 = _uint8(ir), _uint8(vis)
        up = vis8.shape[1] / ir8.shape[1]
        ir_up = cv2.resize(ir8, (vis8.shape[1], int(round(ir8.shape[0] * up))), interpolation=cv2.INTER_LINEAR)
        kp_ir, des_ir = detector.detectAndCompute(ir_up, None)
        kp_vis, des_vis = detector.detectAndCompute(vis8, None)
        if des_ir is None or des_vis is None or len(kp_ir) < 2 or len(kp_vis) < 2:
            continue
        for pair in matcher.knnMatch(des_ir, des_vis, k=2):
            if len(pair) == 2 and pair[0].distance < 0.8 * pair[1].distance:
                x, y = kp_ir[pair[0].queryIdx].pt
                src.append(((x + 0.5) / up - 0.5, (y + 0.5) * ir8.shape[0] / ir_up.shape[0] - 0.5))
                dst.append(kp_vis[pair[0].trainIdx].pt)
    if len(src) < min_inliers:
        return None
    homography, inliers = cv2.findHomography(np.float32(src), np.float32(dst), cv2.RANSAC, 3.0)
    if homography is None or int(inliers.sum()) < min_inliers:
        return None
    return homography / homography[2, 2]


def ecc_homography(ir_frames: Sequence[np.ndarray], vis_frames: Sequence[np.ndarray],
                   work_width: int = 320) -> Optional[np.ndarray]:
    """
    cv2.findTransformECC on gradient magnitudes, started from 'resize' (IR stretched over the visible frame).

    Runs per pair (a 3-level pyramid) and keeps the pair whose ECC correlation is highest.
    """
    best, best_rho = None, -1.0
    for ir, vis in zip(ir_frames, vis_frames):
        vis_h, vis_w = vis.shape[:2]
        factor = work_width / vis_w
        size = (work_width, int(round(vis_h * factor)))

        def magnitude(image: np.ndarray) -> np.ndarray:
            gx, gy = gradients(cv2.resize(to_gray_float(image), size, interpolation=cv2.INTER_AREA), 1.0)
            return np.sqrt(gx * gx + gy * gy).astype(np.float32)

        template, moving = magnitude(vis), magnitude(ir)   # IR stretched to the working size: the 'resize' start
        warp = np.eye(3, dtype=np.float32)
        rho = -1.0
        try:
            for level in (2, 1, 0):
                scale = 0.5 ** level
                t = cv2.resize(template, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                m = cv2.resize(moving, (t.shape[1], t.shape[0]), interpolation=cv2.INTER_AREA)
                down = resample_matrix(t.shape[1] / template.shape[1], t.shape[0] / template.shape[0])
                level_warp = down @ warp @ np.linalg.inv(down)
                rho, level_warp = cv2.findTransformECC(t, m, level_warp.astype(np.float32), cv2.MOTION_HOMOGRAPHY,
                                                       (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5),
                                                       None, 5)
                warp = np.linalg.inv(down) @ level_warp @ down
        except cv2.error:
            continue
        if rho > best_rho:
            # warp maps template (visible work) pixels to moving (IR stretched) pixels.
            stretch = resample_matrix(size[0] / ir.shape[1], size[1] / ir.shape[0])
            to_work = resample_matrix(size[0] / vis_w, size[1] / vis_h)
            vis_to_ir = np.linalg.inv(stretch) @ warp @ to_work
            homography = np.linalg.inv(vis_to_ir)
            best, best_rho = homography / homography[2, 2], rho
    return best
