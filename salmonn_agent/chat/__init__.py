"""Helpers behind :class:`salmonn_agent.chat_model.ChatSALMONN`, one job per module.

* :mod:`.blocks` turns LangChain content blocks into text and audio clips (and refuses bad ones);
* :mod:`.render` writes a conversation in SALMONN's prompt format;
* :mod:`.tools` is the tool-calling prompt protocol (render tools and calls, parse answers);
* :mod:`.grammar` is constrained decoding of JSON with llguidance;
* :mod:`.controls` is the per-request logits processor (grammar, stop sequences, cancellation);
* :mod:`.cache` keeps audio tokens by content hash and conversations' LLM key/value caches;
* :mod:`.engine` batches concurrent requests into one ``generate`` call;
* :mod:`.streaming` turns generated token ids into text pieces;
* :mod:`.messages` builds messages from paths, bytes, arrays and front-end windows.

The public entry point is :mod:`salmonn_agent.chat_model`.
"""
