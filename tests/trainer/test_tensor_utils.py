import math

import pytest
import torch

from trainer.tensor_utils import (
    entropy_from_logits,
    first_true_indices,
    logprobs_from_logits,
    masked_mean,
    masked_var,
    masked_whiten,
    response_mask_from_eos,
    truncate_after_eos,
)

EOS, PAD = 2, 0


def test_masked_mean_ignores_masked_positions():
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, 100.0, 100.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert masked_mean(values, mask).item() == pytest.approx(2.0)  # (1 + 2 + 3) / 3
    assert masked_mean(values, mask, dim=1).tolist() == pytest.approx([1.5, 3.0])


def test_masked_var_unbiased_and_biased_hand_values():
    values = torch.tensor([1.0, 2.0, 3.0, 50.0])
    mask = torch.tensor([1, 1, 1, 0])
    # mean 2, squared deviations 1, 0, 1
    assert masked_var(values, mask).item() == pytest.approx(1.0)  # 2 / (3 - 1)
    assert masked_var(values, mask, unbiased=False).item() == pytest.approx(2 / 3)
    assert masked_var(values, mask).item() == pytest.approx(torch.var(values[:3]).item())


def test_masked_var_raises_when_mask_sum_is_zero_or_one():
    values = torch.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="sum of the mask is zero.*mini_batch_size"):
        masked_var(values, torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="sum of the mask is one.*mini_batch_size"):
        masked_var(values, torch.tensor([1, 0]))


def test_masked_whiten_gives_zero_mean_unit_variance_and_zeros_padding():
    torch.manual_seed(0)
    values = torch.randn(4, 6) * 3 + 5
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[1, 4:] = False
    mask[3, 2:] = False
    whitened = masked_whiten(values, mask)
    assert masked_mean(whitened, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert masked_var(whitened, mask).item() == pytest.approx(1.0, abs=1e-4)
    assert torch.all(whitened[~mask] == 0)


def test_masked_whiten_without_shift_keeps_the_mean():
    values = torch.tensor([[1.0, 3.0, 9.0]])
    mask = torch.tensor([[True, True, False]])
    whitened = masked_whiten(values, mask, shift_mean=False)
    # mean 2, unbiased std sqrt(2): (x - 2) / sqrt(2) + 2
    expected = [2 - 1 / math.sqrt(2), 2 + 1 / math.sqrt(2), 0.0]
    assert whitened[0].tolist() == pytest.approx(expected, abs=1e-5)


def test_first_true_indices_gives_row_length_when_none_is_true():
    bools = torch.tensor([[False, True, True], [False, False, False], [True, False, False]])
    assert first_true_indices(bools).tolist() == [1, 3, 0]


def test_truncate_after_eos_pads_everything_after_the_first_eos():
    responses = torch.tensor([[5, EOS, 7, EOS], [5, 6, 7, 8], [EOS, 6, 7, 8]])
    assert truncate_after_eos(responses, EOS, PAD).tolist() == [
        [5, EOS, PAD, PAD],
        [5, 6, 7, 8],
        [EOS, PAD, PAD, PAD],
    ]


def test_response_mask_includes_the_eos_and_works_when_pad_equals_eos():
    responses = torch.tensor([[5, EOS, EOS, EOS], [5, 6, 7, 8]])  # pad == eos here
    assert response_mask_from_eos(responses, EOS).tolist() == [[True, True, False, False], [True] * 4]


def test_logprobs_from_logits_matches_log_softmax_gather():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 7)
    labels = torch.randint(0, 7, (2, 3))
    expected = torch.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(logprobs_from_logits(logits, labels), expected)


def test_entropy_from_logits_matches_categorical_and_uniform():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 7)
    expected = torch.distributions.Categorical(logits=logits).entropy()
    torch.testing.assert_close(entropy_from_logits(logits), expected)
    assert entropy_from_logits(torch.zeros(1, 1, 8)).item() == pytest.approx(math.log(8))
