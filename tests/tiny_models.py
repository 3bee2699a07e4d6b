"""Build tiny random Qwen2 / InternLM2 models with a tokenizer trained offline (no model hub).

Run it with the XTuner environment's python (transformers 4.48 writes the config XTuner reads):

    .venv-xtuner/bin/python tests/tiny_models.py qwen2 /tmp/tiny-qwen2 [corpus.jsonl ...]

The tokenizer is a byte-level BPE trained with `tokenizers` on a fixed Chinese corpus plus any JSONL
files given (so every character encodes, none is unknown), saved as a fast tokenizer whose eos is
`<|im_end|>`, the end of an assistant turn in both qwen_chat and internlm2_chat. The model has hidden
size 64 and 2 layers (~100k parameters), seeded, so two builds are identical. InternLM2's modelling code
is copied from the xtuner wheel (`xtuner/_lite/modelings/internlm2`) and loaded with trust_remote_code.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

CORPUS = [
    "天命人是《黑神话：悟空》中玩家操控的角色，一路西行，寻找大圣留下的六件根器。",
    "为什么我爸妈结婚的时候没邀请我参加婚礼？因为那时你还没有出生。",
    "祝姐姐生日快乐，愿你每天都开开心心，万事顺意！",
    "只剩一个心脏了还能活吗？能，人本来就只有一个心脏。",
    "孙悟空大闹天宫之后，被如来佛祖压在五行山下五百年。",
    "请客吃饭时，主宾通常坐在面对门口的位置，以示尊重。",
    "我最近压力很大，晚上总是睡不着，该怎么办？可以试着规律作息，睡前少看手机。",
    "Hello, world! The quick brown fox jumps over the lazy dog. 0123456789",
]
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>", "</s>"]


def _texts(corpus_files: list[Path]) -> list[str]:
    texts = list(CORPUS)
    for path in corpus_files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(json.dumps(json.loads(line), ensure_ascii=False))
    return texts


def build_tokenizer(out: Path, corpus_files: list[Path], family: str, vocab_size: int = 600):
    """Train a byte-level BPE offline and save it as a fast tokenizer in `out`.

    Qwen2: saved as `Qwen2TokenizerFast` with no bos (XTuner's encode_fn adds none for that class).
    InternLM2: a plain fast tokenizer with bos `<s>` (XTuner prepends bos for every other class).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_texts(corpus_files), trainer=trainer)
    cls, extra = (Qwen2TokenizerFast, {}) if family == "qwen2" else (PreTrainedTokenizerFast, {"bos_token": "<s>"})
    fast = cls(
        tokenizer_object=tok, **extra, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"], model_input_names=["input_ids", "attention_mask"],
    )
    fast.save_pretrained(out)
    return fast


def build_qwen2(out: Path, corpus_files: list[Path] = ()) -> Path:
    """A tiny random Qwen2ForCausalLM + tokenizer in `out`."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer(out, list(corpus_files), "qwen2")
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None, torch_dtype="float32",
    )
    Qwen2ForCausalLM(config).save_pretrained(out, safe_serialization=True)
    return out


def build_internlm2(out: Path, corpus_files: list[Path] = ()) -> Path:
    """A tiny random InternLM2 (modelling code from the xtuner wheel) + tokenizer in `out`."""
    import torch
    import xtuner._lite.modelings.internlm2 as src

    tokenizer = build_tokenizer(out, list(corpus_files), "internlm2")
    out.mkdir(parents=True, exist_ok=True)
    src_dir = Path(src.__file__).parent
    for name in ("configuration_internlm2.py", "modeling_internlm2.py"):
        shutil.copy(src_dir / name, out / name)
    from xtuner._lite.modelings.internlm2.configuration_internlm2 import InternLM2Config
    from xtuner._lite.modelings.internlm2.modeling_internlm2 import InternLM2ForCausalLM

    torch.manual_seed(0)
    config = InternLM2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        bos_token_id=tokenizer.convert_tokens_to_ids("<s>"), eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False, attn_implementation="eager",
    )
    config.auto_map = {
        "AutoConfig": "configuration_internlm2.InternLM2Config",
        "AutoModel": "modeling_internlm2.InternLM2ForCausalLM",
        "AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM",
    }
    InternLM2ForCausalLM(config).save_pretrained(out, safe_serialization=True)
    return out


BUILDERS = {"qwen2": build_qwen2, "internlm2": build_internlm2}

if __name__ == "__main__":
    kind, target, *corpus = sys.argv[1:]
    BUILDERS[kind](Path(target), [Path(c) for c in corpus])
