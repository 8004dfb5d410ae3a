"""The official decode YAML loads as it is, and maps onto our model config."""

from __future__ import annotations

import pytest

from salmonn_agent.config import GenerationConfig, OfficialConfig, SALMONNConfig
from salmonn_agent.errors import ConfigError

# The fields of bytedance/SALMONN configs/decode_config.yaml (branch salmonn), with paths filled in.
OFFICIAL_DECODE_YAML = """\
model:
  # paths
  llama_path: "/models/vicuna-13b-v1.1"
  whisper_path: "/models/whisper-large-v2"
  beats_path: "/models/BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt"

  ckpt: "/models/salmonn_v1.pth" # model used for decoding

  freeze_whisper: True
  freeze_beats: True

  # window-level Q-Former
  use_speech_Qformer: True
  freeze_speech_QFormer: False
  window_level_Qformer: True
  num_speech_query_token: 1
  second_per_window: 0.333333
  second_stride: 0.333333

  speech_llama_proj_model: ""
  freeze_speech_llama_proj: False

  # LoRA
  lora: True
  lora_rank: 8
  lora_alpha: 32
  lora_dropout: 0.1

  multi_prompt: True
  prompt_template: "USER: {}\\nASSISTANT:"
  prompt_path: "prompts/train_prompt.json"
  test_prompt_path: "prompts/test_prompt.json"
  max_txt_len: 300
  end_sym: "</s>"

generate:
  max_new_tokens: 200
  num_beams: 4
  do_sample: False
  min_length: 1
  temperature: 1.0
  top_p: 0.9
  repetition_penalty: 1.0
  length_penalty: 1.0
"""


def test_official_decode_config_loads_and_translates(tmp_path):
    path = tmp_path / "decode_config.yaml"
    path.write_text(OFFICIAL_DECODE_YAML)
    official = OfficialConfig.from_yaml(path)
    assert official.model.lora_alpha == 32 and official.generate.num_beams == 4
    config = SALMONNConfig.from_official(official)
    assert config.prompt_template == "USER: {}\nASSISTANT:"
    assert config.lora.scaling == 4.0
    assert config.beats.endswith("cpt2.pt")
    assert config.generation.max_new_tokens == 200 and config.generation.top_p == 0.9


def test_unknown_or_invalid_fields_are_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(OFFICIAL_DECODE_YAML.replace("lora_rank: 8", "lora_rnak: 8"))
    with pytest.raises(ConfigError, match="lora_rnak"):
        OfficialConfig.from_yaml(path)
    path.write_text("generate:\n  num_beams: 4\n")
    with pytest.raises(ConfigError, match="no 'model:' section"):
        OfficialConfig.from_yaml(path)
    with pytest.raises(ConfigError, match="not found"):
        OfficialConfig.from_yaml(tmp_path / "missing.yaml")


def test_generation_overrides_are_validated():
    config = GenerationConfig().updated(num_beams=1, top_p=None)
    assert config.num_beams == 1 and config.top_p == 0.9
    with pytest.raises(ConfigError, match="num_beams"):
        GenerationConfig().updated(num_beams=0)
    with pytest.raises(ConfigError, match="max_tokens"):
        GenerationConfig().updated(max_tokens=3)
