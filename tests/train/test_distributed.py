"""The unchanged `kinherit pretrain` command under torchrun: 2 CPU processes, gloo DDP."""

from kinherit.metrics.log import read_metrics


def test_two_process_ddp_run(tmp_path, tiny_run, torchrun_pretrain):
    torchrun_pretrain(tiny_run(tmp_path / "ddp", max_steps=4, eval_steps=4, save_steps=4, logging_steps=2))
    events = read_metrics(tmp_path / "ddp" / "metrics.jsonl")
    train = [e for e in events if "loss" in e]
    assert [e["step"] for e in train] == [2, 4]  # written once, by the main process
    assert train[-1]["tokens"] == 4 * 8 * 32 * 2  # steps × per-device batch × seq_len × world size
    assert (tmp_path / "ddp" / "checkpoints" / "checkpoint-4" / "rng_state_1.pth").is_file()
    assert (tmp_path / "ddp" / "model" / "model.safetensors").is_file()
