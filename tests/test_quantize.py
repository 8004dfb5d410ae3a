"""--quantize int8|int4: the LLM's weights quantized with bitsandbytes, LoRA kept at the call's
scale, on the tiny model in the official format (decode YAML + .pth); and the memory report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("bitsandbytes")

from devkit.tiny import build_tiny_model  # noqa: E402
from salmonn_agent.errors import ConfigError  # noqa: E402
from salmonn_agent.model.salmonn import SALMONN  # noqa: E402
from tests.test_checkpoint import write_official_checkpoint  # noqa: E402

SR = 16_000
GREEDY = dict(max_new_tokens=8, num_beams=1, do_sample=False)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def official_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model as the official files: a decode YAML and a ``.pth`` (its Q-Former has the
    official width, so the official config's shapes fit)."""
    root = tmp_path_factory.mktemp("official")
    model = SALMONN.from_pretrained(build_tiny_model(root, qformer_hidden=768), device="cpu")
    write_official_checkpoint(model, root / "salmonn.pth")
    (root / "decode.yaml").write_text(
        "model:\n"
        f"  llama_path: \"{model.config.llm}\"\n"
        f"  whisper_path: \"{model.config.whisper}\"\n"
        "  beats_path: \"\"\n"
        f"  ckpt: \"{root / 'salmonn.pth'}\"\n"
        "  lora_rank: 4\n  lora_alpha: 16\n  lora_dropout: 0.0\n"
        "generate:\n  max_new_tokens: 8\n  num_beams: 1\n"
    )
    return root / "decode.yaml"


@pytest.fixture(scope="module")
def reference(official_yaml: Path) -> SALMONN:
    return SALMONN.from_official(official_yaml, device="cpu")


def _prompt_logits(model: SALMONN, clip, lora_scale: float | None) -> torch.Tensor:
    """The logits of the last prompt position (the first answer token's) at ``lora_scale``."""
    (audio,) = model.encode_audio([clip], sample_rate=SR)
    inputs = model.embed_prompts([model.render_prompt("hello")], [[audio]])
    with torch.no_grad(), model.lora_scale(lora_scale):
        return model.llm(inputs_embeds=inputs.embeds, attention_mask=inputs.attention_mask).logits[0, -1]


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantized_llm_keeps_lora_separate_and_answers_close(official_yaml, reference, noise_clips, mode):
    model = SALMONN.from_official(official_yaml, device="cpu", dtype="auto", quantize=mode)
    assert model.weight_quantization == mode and model.dtype == torch.float32 and not model.half_weights
    base = model.llm.get_base_model()
    layer = base.model.layers[0]
    assert "bitsandbytes" in type(layer.mlp.down_proj).__module__
    q_proj = layer.self_attn.q_proj
    assert "bitsandbytes" in type(q_proj.base_layer).__module__  # quantized under LoRA
    assert q_proj.lora_A["default"].weight.dtype == torch.float32  # LoRA itself is not
    assert type(base.get_output_embeddings()) is torch.nn.Linear  # the LM head is not

    clip = noise_clips["5s"]
    for scale in (None, 1.0):
        exact, approx = _prompt_logits(reference, clip, scale), _prompt_logits(model, clip, scale)
        similarity = float(torch.nn.functional.cosine_similarity(exact, approx, dim=0))
        assert similarity > (0.999 if mode == "int8" else 0.98), (scale, similarity)
    # LoRA is applied at the call's scale: switching it off changes the quantized model's output.
    assert not torch.allclose(_prompt_logits(model, clip, 0.0), _prompt_logits(model, clip, None), atol=1e-3)
    if mode == "int8":
        # Greedy answers equal float32's. (Longer answers at the default scale 4 can differ after
        # about 10 tokens: the random tiny model's logits are nearly flat, so a near-tie flips.)
        for scale in (None, 0.0, 1.0):
            want = reference.generate(clip, "hello", sample_rate=SR, lora_scale=scale, **GREEDY)
            assert model.generate(clip, "hello", sample_rate=SR, lora_scale=scale, **GREEDY) == want, scale


def test_quantized_layers_take_the_bytes_the_memory_report_counts(official_yaml):
    from salmonn_agent.model.weight_quant import quantized_linear_bytes, stored_bytes

    for mode in ("int8", "int4"):
        model = SALMONN.from_official(official_yaml, device="cpu", quantize=mode)
        layer = model.llm.get_base_model().model.layers[0].mlp.down_proj
        assert layer.bias is None and stored_bytes(layer) == quantized_linear_bytes(layer.in_features, layer.out_features, mode)


def test_bad_quantize_options_fail_in_one_line_naming_the_fix(tiny_model_dir):
    cases = [
        (dict(quantize="int3"), "use int8 or int4"),
        (dict(quantize="int8", device="mps"), "runs on cuda or cpu"),
        (dict(quantize="int8", dtype="float16-weights"), "give one of them"),
        (dict(quantize="int4", dtype="int8"), "give one of them"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigError, match=message) as caught:
            SALMONN.from_pretrained(tiny_model_dir, **kwargs)
        assert "\n" not in str(caught.value)


def test_cli_quantize_errors_are_one_line(tiny_model_dir, capsys):
    from salmonn_agent.cli import main

    speech = str(ROOT / "examples" / "audio" / "speech.wav")
    with pytest.raises(SystemExit):  # argparse names the choices
        main(["ask", speech, "hi", "--model", str(tiny_model_dir), "--quantize", "int3"])
    assert "int8" in capsys.readouterr().err
    assert main(["ask", speech, "hi", "--model", str(tiny_model_dir), "--device", "mps", "--quantize", "int8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cuda or cpu" in err and "\n" not in err and "Traceback" not in err


def test_chat_model_loads_a_quantized_model(tiny_model_dir):
    from salmonn_agent.chat_model import ChatSALMONN

    chat = ChatSALMONN(model=str(tiny_model_dir), device="cpu", quantize="int4")
    assert chat._client(None).weight_quantization == "int4"


def test_memory_report_builds_the_official_shapes_on_the_meta_device():
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "model_memory.py"), "--json"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    for name, llm_params in (("SALMONN-13B", 13.0e9), ("SALMONN-7B", 6.7e9)):
        model = report["models"][name]
        assert abs(model["parameters"]["llm"] - llm_params) / llm_params < 0.03
        gib = {mode: model["modes"][mode]["total_gib"] for mode in ("float16", "int8", "int4")}
        assert gib["float16"] > gib["int8"] > gib["int4"]


def test_half_precision_models_are_read_in_half_precision_with_the_same_weights(tiny_model_dir):
    """The LLM is read from disk in float16 when the model is placed in float16 (half the CPU
    memory while loading), with the same weights as a float32 load converted afterwards."""
    from unittest import mock

    from salmonn_agent.model.salmonn import loading_dtype, place_model

    assert loading_dtype("cpu", "float16", None) == torch.float16
    assert loading_dtype("cpu", "auto", "int8") == torch.float32
    assert loading_dtype("cpu", "float16-weights", None) == torch.float32
    read = []
    original = SALMONN._build.__func__

    def spy(cls, config, llm_dtype=torch.float32):
        read.append(llm_dtype)
        return original(cls, config, llm_dtype)

    with mock.patch.object(SALMONN, "_build", classmethod(spy)):
        half = SALMONN.from_pretrained(tiny_model_dir, device="cpu", dtype="float16")
    assert read == [torch.float16] and half.dtype == torch.float16
    converted = place_model(SALMONN.from_pretrained(tiny_model_dir, device="cpu"), "cpu", torch.float16)
    for name, tensor in converted.state_dict().items():
        assert torch.equal(tensor, half.state_dict()[name]), name
