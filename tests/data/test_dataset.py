import numpy as np
import torch

from kinherit.data.dataset import IGNORE_INDEX, EpochShuffleSampler, MaskingSpec, PackedBlocks


def _blocks(tmp_path, masking=None, n=64_000, seq_len=128):
    path = tmp_path / "tokens.bin"
    tokens = np.random.default_rng(0).integers(4, 1000, n).astype(np.uint16)
    tokens[::50] = 0  # separators (special)
    tokens.tofile(path)
    return PackedBlocks(path, np.uint16, seq_len, masking), tokens


def test_blocks_are_consecutive_and_labels_equal_inputs(tmp_path):
    blocks, tokens = _blocks(tmp_path)
    assert len(blocks) == 500
    item = blocks[3]
    assert torch.equal(item["input_ids"], torch.from_numpy(tokens[384:512].astype(np.int64)))
    assert torch.equal(item["labels"], item["input_ids"])
    assert torch.equal(blocks[503]["input_ids"], item["input_ids"])  # epoch 1 wraps to the same block


def test_masking_statistics_match_bert(tmp_path):
    masking = MaskingSpec(mask_token_id=2, vocab_size=1000, special_ids=[0, 1, 2, 3], seed=0)
    blocks, _ = _blocks(tmp_path, masking)
    chosen = masked = randomized = kept = selectable = 0
    for i in range(len(blocks)):
        item, original = blocks[i], blocks._block(i)
        target = item["labels"] != IGNORE_INDEX
        assert torch.equal(item["labels"][target], original[target])
        assert not target[original == 0].any()  # specials are never chosen
        selectable += int((original != 0).sum())
        chosen += int(target.sum())
        masked += int((item["input_ids"][target] == 2).sum())
        kept += int((item["input_ids"][target] == original[target]).sum())
        randomized += int(((item["input_ids"] != original) & (item["input_ids"] != 2)).sum())
    assert abs(chosen / selectable - 0.15) < 0.005
    assert abs(masked / chosen - 0.8) < 0.01
    assert abs(kept / chosen - 0.1) < 0.01  # includes the 0.1% of random draws that hit the same id
    assert abs(randomized / chosen - 0.1) < 0.01


def test_masking_depends_only_on_seed_and_index(tmp_path):
    masking = MaskingSpec(2, 1000, [0, 1, 2, 3], seed=5)
    blocks, _ = _blocks(tmp_path, masking)
    assert torch.equal(blocks[7]["input_ids"], blocks[7]["input_ids"])
    assert not torch.equal(blocks[7]["input_ids"], blocks[507]["input_ids"])  # dynamic across epochs


def test_sampler_is_a_seeded_permutation_per_epoch():
    sampler = EpochShuffleSampler(10, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(10)) and first == list(EpochShuffleSampler(10, seed=3))
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(second) == list(range(10, 20)) and [i - 10 for i in second] != first


def test_sampler_memory_does_not_grow_with_one_object_per_block():
    """A 600 MB corpus has ≈ 1.4 M blocks: starting an epoch must not build one Python/tensor object per block
    (iterating the permutation tensor did: ≈ 600 bytes a block, 0.85 GiB there). The order stays torch.randperm's."""
    import psutil

    process = psutil.Process()
    sampler = EpochShuffleSampler(500_000, seed=3)
    before = process.memory_info().rss
    first = next(iter(sampler))
    grown = process.memory_info().rss - before
    assert grown < 40 << 20, f"{grown / 2**20:.0f} MiB to start an epoch of 500k blocks"  # 261 MiB before
    expected = torch.randperm(500_000, generator=torch.Generator().manual_seed(3))[0].item()
    assert first == expected
    small = EpochShuffleSampler(1000, seed=5)
    small.set_epoch(2)
    perm = torch.randperm(1000, generator=torch.Generator().manual_seed(5 + 7919 * 2)).tolist()
    assert list(small) == [2000 + i for i in perm]


def test_max_blocks_takes_blocks_spread_evenly_over_the_file(tmp_path):
    blocks, tokens = _blocks(tmp_path)
    path = tmp_path / "tokens.bin"
    spread = PackedBlocks(path, np.uint16, 128, max_blocks=7)
    assert len(spread) == 7 and blocks.num_blocks == spread.num_blocks == 500
    for j, block in enumerate([0, 71, 142, 214, 285, 357, 428]):  # ⌊j·500/7⌋
        assert torch.equal(spread[j]["input_ids"], torch.from_numpy(tokens[128 * block : 128 * (block + 1)]).long())
    assert torch.equal(spread[8]["input_ids"], spread[1]["input_ids"])  # wraps like the full split
    assert len(PackedBlocks(path, np.uint16, 128, max_blocks=10_000)) == 500  # a cap above the split: every block
