"""Evaluation: success metrics with Wilson intervals (`metrics`), reports and charts (`report`), episode
videos (`video`) and VQA scoring (`vqa`). The rollout loop they observe is `vla.core.rollout`."""
