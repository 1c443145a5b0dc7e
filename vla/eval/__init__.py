"""Evaluation: the shared rollout loop (`rollout`), episode videos (`video`)."""

from vla.eval.rollout import EpisodeResult, Observer, run_episode, run_episodes_vector, summarize

__all__ = ["EpisodeResult", "Observer", "run_episode", "run_episodes_vector", "summarize"]
