"""VLA stack: a shared multimodal backbone library, the VLA and VQA models assembled on it, their data
pipeline (zarr episode store, normaliser, windows sampler), training, closed-loop evaluation and the
`vla` command line. Sibling packages: `sim` (PyBullet table-top tasks), `policies` (the Policy
interface), `action_tokenizers` (RT-2 / OpenVLA / FAST) and `robot_io` (ROS 2 deployment)."""

__version__ = "0.1.0"
