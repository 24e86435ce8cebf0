"""Test assets for the real-webui tests, built with a webui's own Python and classes
(run as a script, by file path, by tests/support/webui_harness.py; never imported by the
test process):

    python webui_assets.py clip-cache HF_HOME
        an offline Hugging Face cache entry for "openai/clip-vit-large-patch14" holding the
        CLIP tokenizer (vocab.json, merges.txt, configs; no weights), generated from the
        byte-pair-encoding table that the open_clip package ships (the same BPE as CLIP's):
        A1111's SD1 text encoder loads that tokenizer by name, and nothing may be downloaded.

    python webui_assets.py checkpoint WEBUI_ROOT OUT.safetensors [SEED]
        a random-weight SD1.5 checkpoint: ldm's LatentDiffusion built from the webui's
        configs/v1-inference.yaml (text encoder from its config only), with the UNet
        layers that ldm initialises to zero re-initialised, so the random model's output
        depends on x, sigma and the prompt and different samplers give different images.
"""

import gzip
import json
import os
import sys

CLIP_REPO = "openai/clip-vit-large-patch14"


def _byte_alphabet():
    """CLIP's reversible byte -> printable-unicode map (printable Latin-1 bytes map to
    themselves, the other 68 bytes to code points 256 and up, in byte order)."""
    keep = [b for b in range(256) if (33 <= b <= 126) or (161 <= b <= 172) or (174 <= b <= 255)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in keep] + [table[b] for b in range(256) if b not in keep]


def clip_cache(hf_home):
    import open_clip

    bpe = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    lines = gzip.open(bpe).read().decode("utf-8").split("\n")
    merges = lines[1:1 + 49152 - 256 - 2]  # CLIP uses the first 48894 merges
    alphabet = _byte_alphabet()
    vocab = alphabet + [a + "</w>" for a in alphabet] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    if len(vocab) != 49408:
        raise SystemExit(f"unexpected CLIP vocabulary size {len(vocab)}")
    revision = "0" * 40
    repo = os.path.join(hf_home, "hub", "models--" + CLIP_REPO.replace("/", "--"))
    snap = os.path.join(repo, "snapshots", revision)
    os.makedirs(snap, exist_ok=True)
    os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
    with open(os.path.join(repo, "refs", "main"), "w") as f:
        f.write(revision)
    with open(os.path.join(snap, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({tok: i for i, tok in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(snap, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
               "pad_token": "<|endoftext|>"}
    with open(os.path.join(snap, "special_tokens_map.json"), "w") as f:
        json.dump(special, f)
    with open(os.path.join(snap, "tokenizer_config.json"), "w") as f:
        json.dump(dict(special, do_lower_case=True, model_max_length=77, errors="replace",
                       add_prefix_space=False, tokenizer_class="CLIPTokenizer"), f)
    text = {"model_type": "clip_text_model", "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072,
            "num_attention_heads": 12, "num_hidden_layers": 12, "max_position_embeddings": 77,
            "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "projection_dim": 768,
            "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1}
    vision = {"model_type": "clip_vision_model", "hidden_size": 1024, "intermediate_size": 4096,
              "num_attention_heads": 16, "num_hidden_layers": 24, "image_size": 224, "patch_size": 14,
              "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "projection_dim": 768}
    with open(os.path.join(snap, "config.json"), "w") as f:
        json.dump({"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": 768,
                   "logit_scale_init_value": 2.6592, "text_config": text, "vision_config": vision}, f)
    print("tokenizer cache:", snap)


def checkpoint(root, out, seed=0):
    import torch

    sys.path.insert(0, os.path.join(root, "repositories", "stable-diffusion-stability-ai"))
    import transformers
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    import ldm.modules.encoders.modules as encoders
    from ldm.util import instantiate_from_config

    def text_model_from_config(name, *args, **kwargs):  # no weights from the hub
        return transformers.CLIPTextModel(transformers.CLIPTextConfig.from_pretrained(name))

    encoders.CLIPTextModel.from_pretrained = text_model_from_config
    torch.manual_seed(seed)
    model = instantiate_from_config(OmegaConf.load(os.path.join(root, "configs", "v1-inference.yaml")).model)
    n = 0
    for m in model.model.diffusion_model.modules():
        w = getattr(m, "weight", None)
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and w is not None and not bool(w.any()):
            m.reset_parameters()
            n += 1
    state = {k: v.detach().float().contiguous() if v.is_floating_point() else v.detach().contiguous()
             for k, v in model.state_dict().items()}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".part"
    save_file(state, tmp, metadata={"note": "random weights, SD1.5 architecture, for tests"})
    os.replace(tmp, out)
    print(f"checkpoint: {out} ({len(state)} tensors, {n} zero-initialised UNet layers re-initialised)")


if __name__ == "__main__":
    if sys.argv[1] == "clip-cache":
        clip_cache(sys.argv[2])
    elif sys.argv[1] == "checkpoint":
        checkpoint(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 0)
    else:
        raise SystemExit(f"unknown command {sys.argv[1]!r}")
