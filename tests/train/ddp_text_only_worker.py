"""Run under `python -m torch.distributed.run --nproc_per_node 2` (CPU, gloo) by tests/train/test_ddp.py.

Rank 0 trains on a batch with target audio, rank 1 on a text-only batch (no audio output at all), through
DDP with find_unused_parameters=False as the recipe sets it. If the loss left the audio head out of
rank 1's graph, its gradient bucket would never be reduced: rank 0 would wait for it forever (the
gloo timeout turns that hang into an error here). Prints one line per rank: max |param difference|.
"""

import datetime
import gc
import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.getcwd())

from higgs_lora.data.codes import TinyCodec  # noqa: E402
from higgs_lora.data.collator import DictCollator, build_collator, make_chatml_sample  # noqa: E402
from higgs_lora.data.dataset import VoiceCloningDataset  # noqa: E402
from higgs_lora.data.validate import load_samples  # noqa: E402
from higgs_lora.model.load import apply_lora, load_model, load_tokenizer  # noqa: E402
from higgs_lora.train.loss import compute_loss  # noqa: E402


def main(data_path: str, heads: str = "full") -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = apply_lora(load_model("tiny", device="cpu", dtype="fp32"), 4, 8, 0.0)
    collate = DictCollator(build_collator(model.config))
    tokenizer = load_tokenizer("tiny")
    if rank == 0:
        dataset = VoiceCloningDataset(load_samples(data_path)[:2], tokenizer, TinyCodec())
        batch = collate([dataset[0], dataset[1]])
    else:
        ids = tokenizer.encode("a text-only batch, no audio anywhere", add_special_tokens=False)
        batch = collate([make_chatml_sample(ids, [-100] * 4 + ids[4:], [])] * 2)
    if heads == "labelled":  # what train runs: the heads at the labelled rows only, on the host-laid-out merge
        from higgs_lora.train import heads as labelled_heads

        labelled_heads.install(model)
        batch = labelled_heads.labelled_inputs(batch, model.config)
    trainable = [p for p in model.parameters() if p.requires_grad]
    initial = torch.cat([p.detach().reshape(-1) for p in trainable]).clone()
    ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=False)
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        out = ddp(**batch)
        compute_loss(out, batch["label_audio_ids"]).loss.backward()
        optimizer.step()
    flat = torch.cat([p.detach().reshape(-1) for p in trainable])
    gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    moved = float((flat - initial).abs().max())
    # One write per line: both ranks share torchrun's stdout, and print's separate text and newline
    # writes could interleave ("...moved 0.09rank 0 done: ...").
    line = f"rank {rank} done: max diff to rank 0 {float((gathered[0] - flat).abs().max()):.3g}; moved {moved:.3g}\n"
    os.write(sys.stdout.fileno(), line.encode())
    # Teardown: DDP's reducer holds the process group and gloo work objects. Left to interpreter
    # finalization, gloo's threads can outlive the interpreter and abort the process ("terminate called
    # without an active exception", SIGABRT) after the work is done: release them first, while the
    # interpreter is whole, and let every rank get here before the group goes.
    del ddp, optimizer, out
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
    # Skip finalization: with the work checked and the group destroyed, nothing is left to flush, and
    # a late gloo thread can no longer turn a finished run into an abort.
    os._exit(0)
