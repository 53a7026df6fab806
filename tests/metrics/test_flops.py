from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    BertConfig,
    GPT2Config,
    LlamaConfig,
    MixtralConfig,
    Qwen2MoeConfig,
)

from kinherit.metrics.flops import flops_per_token


def test_llama_gqa_hand_count():
    config = LlamaConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        tie_word_embeddings=False,
    )
    flops = flops_per_token(AutoModelForCausalLM.from_config(config), seq_len=16)
    # per layer: q 32·32 + k 32·16 + v 32·16 + o 32·32 + gate/up/down 3·32·64 = 9216; head 100·32
    n_matmul = 2 * 9216 + 3200
    assert flops.matmul_params == n_matmul
    assert flops.forward == 2 * n_matmul + 4 * 2 * 16 * 32
    assert flops.train == 3 * flops.forward


def test_gpt2_tied_head_counts_as_matmul():
    config = GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_inner=128, n_positions=64)
    flops = flops_per_token(AutoModelForCausalLM.from_config(config), seq_len=64)
    # per layer: c_attn 32·96 + attn c_proj 32·32 + c_fc 32·128 + mlp c_proj 128·32; tied head 100·32
    assert flops.matmul_params == 2 * (3072 + 1024 + 4096 + 4096) + 3200
    assert flops.forward == 2 * flops.matmul_params + 4 * 2 * 64 * 32


def test_bert_mlm_head_transform_is_counted():
    config = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64
    )
    flops = flops_per_token(AutoModelForMaskedLM.from_config(config), seq_len=8)
    # layer: q,k,v,o 4·32·32 + ffn 2·32·64; MLM head: transform 32·32 + decoder 100·32 (pooler absent in MLM)
    assert flops.matmul_params == 4 * 1024 + 2 * 2048 + 1024 + 3200


def test_mixtral_counts_active_experts_and_the_router():
    config = MixtralConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=48,
        num_local_experts=6,
        num_experts_per_tok=2,
    )
    flops = flops_per_token(AutoModelForCausalLM.from_config(config), seq_len=16)
    # per layer: q,o 2·32·32 + k,v 2·32·16 + router 6·32 + 2 of the 6 experts 2·3·32·48; head 100·32
    assert flops.matmul_params == 2 * (2048 + 1024 + 192 + 9216) + 3200
    assert flops.forward == 2 * flops.matmul_params + 4 * 2 * 16 * 32


def test_qwen2_moe_counts_the_shared_expert_and_its_gate():
    config = Qwen2MoeConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=4,
        moe_intermediate_size=16,
        shared_expert_intermediate_size=40,
        num_experts=8,
        num_experts_per_tok=3,
    )
    flops = flops_per_token(AutoModelForCausalLM.from_config(config), seq_len=8)
    # q,k,v,o 4·32·32 + router 8·32 + 3 experts 3·3·32·16 + shared expert 3·32·40 + its gate 32; head 100·32
    assert flops.matmul_params == 4096 + 256 + 4608 + 3840 + 32 + 3200
