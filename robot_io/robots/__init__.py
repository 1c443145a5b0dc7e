"""Robot descriptions shipped with the stack, found by `robot_io.kinematics.resolve_urdf` when a robot file
names a relative `urdf:` that pybullet_data does not have: `fr3.urdf`, the Franka Research 3's kinematic
tree (joint frames, limits, hand and TCP; no meshes) for `robot=fr3` (configs/robot/fr3.yaml). On a real
arm, point `robot.urdf` at the URDF your franka_description generates instead."""
