"""TokenBudgetBatchSampler: coverage across ranks, equal batch counts, determinism, the budget, and a
short Trainer run with it on."""

import numpy as np
import pytest
import torch

from higgs_lora.data.sampler import TokenBudgetBatchSampler, describe


def _lengths(n=503, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.lognormal(6.0, 0.5, n)).astype(int) + 20  # ~60 .. 2000 tokens, long-tailed


@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_every_sample_exactly_once_per_epoch_and_equal_batch_counts(world):
    lengths = _lengths()
    for epoch in (0, 1):
        per_rank = []
        for rank in range(world):
            s = TokenBudgetBatchSampler(lengths, 4096, seed=3, num_replicas=world, rank=rank)
            s.set_epoch(epoch)
            per_rank.append(list(s))
            assert len(per_rank[-1]) == len(s)
        assert len({len(b) for b in per_rank}) == 1  # DDP: no rank runs out before the others
        seen = [i for batches in per_rank for batch in batches for i in batch]
        assert sorted(seen) == list(range(len(lengths)))


def test_padded_batch_stays_within_the_token_budget():
    lengths = _lengths()
    lengths[7] = 9000  # longer than the budget: trains alone
    s = TokenBudgetBatchSampler(lengths, 4096, seed=0)
    for batch in s:
        padded = max(lengths[i] for i in batch) * len(batch)
        assert padded <= 4096 or batch == [7]
    assert s.stats()["over_budget_singletons"] == 1
    capped = TokenBudgetBatchSampler(lengths, 10**6, seed=0, max_batch_size=5)
    assert max(len(b) for b in capped) == 5


def test_deterministic_per_seed_and_epoch():
    lengths = _lengths()
    a = TokenBudgetBatchSampler(lengths, 4096, seed=1, num_replicas=2, rank=1)
    b = TokenBudgetBatchSampler(lengths, 4096, seed=1, num_replicas=2, rank=1)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first  # a new epoch reshuffles
    a.set_epoch(0)
    assert list(a) == first
    assert list(TokenBudgetBatchSampler(lengths, 4096, seed=2, num_replicas=2, rank=1)) != first


def test_similar_lengths_share_a_batch_so_less_padding():
    lengths = _lengths()
    stats = TokenBudgetBatchSampler(lengths, 4096, seed=0).stats()
    assert stats["non_pad_fraction"] > 0.9
    assert stats["non_pad_fraction"] > stats["non_pad_fraction_random_batches"] + 0.15
    assert "non-pad token fraction" in describe(stats, 4096)


def test_tiny_data_sets_still_give_every_rank_a_batch():
    s = [TokenBudgetBatchSampler([100, 100, 100], 100, num_replicas=2, rank=r) for r in range(2)]
    assert len(s[0]) == len(s[1]) == 2  # three singletons: one repeated rather than a hang
    assert sorted({i for x in s for b in x for i in b}) == [0, 1, 2]
    with pytest.raises(ValueError, match="cannot give each of 4 ranks"):
        TokenBudgetBatchSampler([100, 100], 1000, num_replicas=4, rank=0)


def test_trainer_uses_the_sampler_and_trains(tiny_model_factory, sample_samples, tiny_tokenizer, tiny_codec, tmp_path):
    from transformers import TrainingArguments

    from higgs_lora.data.collator import DictCollator, build_collator
    from higgs_lora.data.dataset import VoiceCloningDataset
    from higgs_lora.model.load import apply_lora
    from higgs_lora.train.trainer import HiggsAudioTrainer

    model = tiny_model_factory()
    dataset = VoiceCloningDataset(sample_samples[:6], tiny_tokenizer, tiny_codec)
    lengths = dataset.lengths()
    budget = 2 * max(lengths)  # at most two samples a batch, one when long ones meet
    model = apply_lora(model, 4, 8, 0.0, ["q_proj", "v_proj"])
    args = TrainingArguments(
        output_dir=str(tmp_path),
        report_to=[],
        per_device_train_batch_size=1,
        max_steps=3,
        remove_unused_columns=False,
        use_cpu=True,
        disable_tqdm=True,
        logging_steps=1,
        save_strategy="no",
        learning_rate=1e-3,
        dataloader_num_workers=0,
    )
    collator = DictCollator(build_collator(model.config))
    trainer = HiggsAudioTrainer(
        model=model, args=args, train_dataset=dataset, data_collator=collator, max_tokens_per_batch=budget
    )
    loader = trainer.get_train_dataloader()
    batches = list(loader.batch_sampler)
    assert isinstance(loader.batch_sampler, TokenBudgetBatchSampler)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert all(max(lengths[i] for i in b) * len(b) <= budget for b in batches)
    for batch_indices, batch in zip(batches, loader):  # the loader collates exactly the sampler's batches
        assert batch["input_ids"].shape[0] == len(batch_indices)
        for row, index in enumerate(batch_indices):
            ids = dataset[index].input_ids
            assert torch.equal(batch["input_ids"][row, : len(ids)], ids)
    result = trainer.train()
    assert result.global_step == 3 and np.isfinite(result.training_loss)
