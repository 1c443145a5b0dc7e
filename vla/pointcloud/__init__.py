"""Point clouds for 3D-VLA: camera geometry, the depth -> cloud pipeline, metrics, recording, rendering.

    geometry     CameraModel (K, size, base_T_cam; from the env or a ROS CameraInfo + TF), back-projection
    pipeline     PointCloudPipeline: fuse cameras, crop, remove the table, voxel + farthest-point sampling
    metrics      chamfer_distance, f_score
    recording    PointCloudRecorder: per-frame clouds on request, the episode's goal clouds once per episode
    episode_clouds  per-episode clouds beside an episode store (the env's goal, the final scene)
    model_inputs the VLA's point-cloud inputs: checks, workspace normalisation, clouds from depth
    viz          render_clouds_png (matplotlib, several views side by side), write_ply
    goals        goal-scene triples (initial cloud, instruction, goal cloud) from the scripted experts

Modules are imported on use (open3d and matplotlib load only when their functions run).
"""

from vla.pointcloud.geometry import CameraModel
from vla.pointcloud.metrics import chamfer_distance, f_score
from vla.pointcloud.pipeline import (
    CameraFrame,
    Cloud,
    PointCloudConfig,
    PointCloudPipeline,
    frames_from_env,
    frames_from_obs,
)

__all__ = [
    "CameraFrame",
    "CameraModel",
    "Cloud",
    "PointCloudConfig",
    "PointCloudPipeline",
    "chamfer_distance",
    "f_score",
    "frames_from_env",
    "frames_from_obs",
]
