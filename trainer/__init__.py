"""prefloop trainer: reward-model training and PPO on stored preference judgments."""
