"""Packaging shim: pyproject.toml holds the metadata; this only maps the repo's top-level `configs/`
directory into the wheel as the package data `vla/configs` (hydra presets)."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["vla*", "sim*", "policies*", "action_tokenizers*", "robot_io*"])
    + ["vla.configs"],
    package_dir={"vla.configs": "configs"},
    package_data={"vla.configs": ["*.yaml", "*/*.yaml", "*/*/*.yaml"]},
)
