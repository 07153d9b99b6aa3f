"""Length-aware batching: batches of similar-length samples under a token budget, shared out across ranks.

Trainer's `group_by_length` cannot see lengths inside `ChatMLDatasetSample` items, so the lengths
come from `VoiceCloningDataset.lengths()` (read off the code cache, nothing is loaded).

Per epoch, with the same seed on every rank:
1. shuffle all indices, cut them into windows of `window` samples and sort each window by length
   (similar lengths end up together, yet the order still changes from epoch to epoch);
2. fill batches greedily while `longest length x batch size <= max_tokens` (a padded batch's size);
   a sample longer than the budget gets a batch of its own;
3. while the batch count is not a multiple of the world size, split the largest batch in two,
   so every rank gets the same number of batches (DDP never waits on a rank that has run out) and
   every sample is in exactly one batch on exactly one rank; only when every batch already holds a
   single sample is one repeated instead (`repeated` counts them);
4. shuffle the batches and deal them out: rank r takes batches r, r + W, r + 2W, ...
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np


class TokenBudgetBatchSampler:
    """A batch sampler (yields lists of indices) for `DataLoader(batch_sampler=...)`; call `set_epoch`."""

    def __init__(
        self,
        lengths: Sequence[int],
        max_tokens: int,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        window: int = 1000,
        max_batch_size: int | None = None,
    ):
        if max_tokens <= 0:
            raise ValueError("max_tokens_per_batch must be positive")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside 0..{num_replicas - 1}")
        if len(lengths) < num_replicas:
            raise ValueError(f"{len(lengths)} samples cannot give each of {num_replicas} ranks a batch")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.max_tokens = int(max_tokens)
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = shuffle
        self.window = max(1, window)
        self.max_batch_size = max_batch_size
        self.epoch = 0
        self.repeated = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def global_batches(self) -> list[list[int]]:
        """Every batch of this epoch, all ranks together, in the order they are dealt out."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        batches: list[list[int]] = []
        for start in range(0, len(order), self.window):
            chunk = order[start : start + self.window]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batch: list[int] = []
            longest = 0
            for index in chunk.tolist():
                longer = max(longest, int(self.lengths[index]))
                full = self.max_batch_size is not None and len(batch) >= self.max_batch_size
                if batch and (longer * (len(batch) + 1) > self.max_tokens or full):
                    batches.append(batch)
                    batch, longer = [], int(self.lengths[index])
                batch.append(index)
                longest = longer
            if batch:
                batches.append(batch)
        self.repeated = 0
        while len(batches) % self.num_replicas:
            largest = max(range(len(batches)), key=lambda i: (len(batches[i]), -i))
            if len(batches[largest]) == 1:
                # Only single-sample batches left: repeat one rather than let a rank run out (DDP would hang).
                batches.append(list(batches[self.repeated % len(batches)]))
                self.repeated += 1
                continue
            big = batches.pop(largest)
            half = len(big) // 2
            batches[largest:largest] = [big[:half], big[half:]]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        self._cache = (self.epoch, batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.global_batches()[self.rank :: self.num_replicas]

    def __len__(self) -> int:
        return len(self.global_batches()) // self.num_replicas

    def stats(self) -> dict:
        """Non-pad token fraction of this epoch's batches, against fixed-size batches of the same mean size."""
        batches = self.global_batches()
        real = int(self.lengths.sum())
        padded = sum(int(self.lengths[b].max()) * len(b) for b in batches)
        size = max(1, round(len(self.lengths) / len(batches)))
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        order = rng.permutation(len(self.lengths))
        plain = sum(
            int(self.lengths[order[i : i + size]].max()) * len(order[i : i + size]) for i in range(0, len(order), size)
        )
        return {
            "batches": len(batches),
            "batches_per_rank": len(batches) // self.num_replicas,
            "mean_batch_size": round(len(self.lengths) / len(batches), 2),
            "non_pad_fraction": round(real / padded, 4),
            "non_pad_fraction_random_batches": round(real / plain, 4),
            "max_padded_tokens": max(int(self.lengths[b].max()) * len(b) for b in batches),
            "repeated_batches": self.repeated,
            "over_budget_singletons": sum(1 for b in batches if len(b) == 1 and self.lengths[b[0]] > self.max_tokens),
        }


def describe(stats: dict, max_tokens: int) -> str:
    return (
        f"length-aware batches (--max_tokens_per_batch {max_tokens}): {stats['batches_per_rank']} per rank, "
        f"{stats['mean_batch_size']} samples on average, non-pad token fraction "
        f"{stats['non_pad_fraction']:.3f} (random batches of that size: {stats['non_pad_fraction_random_batches']:.3f})"
        + (
            f"; {stats['over_budget_singletons']} samples longer than the budget train alone"
            if stats["over_budget_singletons"]
            else ""
        )
    )


def length_grouped_dataloader(dataset, collate_fn, args, max_tokens: int):
    """The training DataLoader with `TokenBudgetBatchSampler`, sharded by this sampler itself (not by
    accelerate, which would shard the batches a second time); Trainer calls `set_epoch` on it."""
    from torch.utils.data import DataLoader
    from transformers.trainer_utils import seed_worker

    class EpochDataLoader(DataLoader):
        def set_epoch(self, epoch: int) -> None:
            self.batch_sampler.set_epoch(epoch)

    sampler = TokenBudgetBatchSampler(
        dataset.lengths(), max_tokens, seed=args.seed, num_replicas=args.world_size, rank=args.process_index
    )
    if args.process_index == 0:
        print(describe(sampler.stats(), max_tokens))
    extra = {"prefetch_factor": args.dataloader_prefetch_factor} if args.dataloader_num_workers > 0 else {}
    return EpochDataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_fn,
        num_workers=args.dataloader_num_workers,
        pin_memory=args.dataloader_pin_memory,
        persistent_workers=args.dataloader_persistent_workers and args.dataloader_num_workers > 0,
        worker_init_fn=seed_worker,
        **extra,
    )
