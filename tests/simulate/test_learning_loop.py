"""The loop, CI-sized: the learning benchmark's own code (bench/bench_learning.py) for one round on the
test-sized embedded policy. A real server samples pairs, scripted annotators judge them through the
HTTP API, a round trains and activates a new version, and an oracle (the annotators' preference without
their noise) judges fresh samples of the new version against the base on held-out prompts.

The test preset's replies are gibberish, so the preference is "helpful" (some substance: five words or
more, no evasion), which such a policy can learn within one small round; the full benchmark checks
content preferences on the default preset.
"""

from __future__ import annotations

import pytest

from bench import bench_learning as learning

pytestmark = pytest.mark.slow

CONFIG = learning.LoopConfig(
    rounds=1,
    judgments=300,
    annotators=3,
    noise=0.1,
    oracle_prompts=300,
    # The learning settings are the app's defaults (derived from this policy's and data's size by
    # trainer/defaults.py). Only two checks are set: a smaller held-out evaluation for CI's time, and an
    # end-of-answer gate the test preset's gibberish, which seldom ends by itself, can pass.
    round_config={"evaluate": {"max_prompts": 16}, "gates": {"min_eos_rate": 0.2}},
    round_timeout_s=900,
    server_env={"PREFLOOP_SAMPLER_SEED": "7"},
)


def test_one_round_beats_the_base_with_confidence(tmp_path):
    learning.bootstrap(tmp_path / "base", "test")
    [row] = learning.learn("helpful", CONFIG, tmp_path / "base", tmp_path / "helpful")
    assert row["status"] == "succeeded", row
    assert row["judgments"] == CONFIG.judgments
    low, _high = row["oracle_ci95"]
    print(
        f"\noracle: {row['oracle_wins']} wins, {row['oracle_losses']} losses, {row['oracle_ties']} ties; "
        f"win rate {row['oracle_win_rate']:.3f}, 95% CI from {low:.3f}; KL {row['kl_to_base']:.2f}"
    )
    assert low > 0.5, row
