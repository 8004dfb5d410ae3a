"""Constrained decoding of JSON with llguidance: every answer matches its JSON schema.

A :class:`GrammarFactory` (one per model) compiles JSON schemas with llguidance and opens a
:class:`GrammarSession` per request; the session masks the logits of each step to the tokens
the grammar allows. Schemas are *sealed* first: objects without ``additionalProperties`` get
``false`` (as OpenAI's strict mode does), so a small model cannot invent keys. JSON is compact
(``", "`` and ``": "`` separators, no free whitespace), so it cannot ramble in whitespace.

Budget: a grammar cannot make a model *stop* talking inside a string, and ``max_tokens`` would
then cut the JSON. So each session knows how many tokens a minimal completion needs (a minimal
instance of the schema, tokenized, plus a margin). Once the remaining budget reaches that
reserve, the session switches to *closing* mode: among the allowed tokens it keeps only the best
kind for finishing: the end of sequence; inside a string a token that starts with the closing
``"``; outside one a token that starts with ``}``/``]``, then ``,`` (on to the next required
key), then ``"``, then a scalar (digit, ``-``, ``t``/``f``/``n``), never one that opens a new
object or array when anything else is allowed. So the JSON completes within ``max_tokens`` whenever the budget holds a minimal
instance.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_COMPILE_OPTIONS = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
    "lenient": True,
}
_MARGIN = 4


@dataclass(frozen=True)
class JsonGrammar:
    """A compiled grammar and the tokens a minimal valid answer needs."""

    grammar: str
    reserve: int


class GrammarFactory:
    """Compiles JSON schemas for one tokenizer and opens decoding sessions."""

    def __init__(self, hf_tokenizer: Any, vocab_size: int) -> None:
        import llguidance
        import llguidance.hf

        self._llguidance = llguidance
        n_vocab = max(int(vocab_size), len(hf_tokenizer))
        self.tokenizer = llguidance.hf.from_tokenizer(hf_tokenizer, n_vocab=n_vocab)
        self.vocab_size = n_vocab
        self.eos_id = int(self.tokenizer.eos_token)
        self._tiers = self._closing_tiers()
        self._compiled: dict[str, JsonGrammar] = {}
        self._lock = threading.Lock()

    def compile(self, schema: dict[str, Any]) -> JsonGrammar:
        """The grammar of ``schema`` (sealed), compiled once and cached."""
        key = json.dumps(schema, sort_keys=True, default=str)
        with self._lock:
            if key in self._compiled:
                return self._compiled[key]
        sealed = seal_schema(schema)
        grammar = self._llguidance.LLMatcher.grammar_from_json_schema(sealed, defaults=_COMPILE_OPTIONS)
        error = self._llguidance.LLMatcher.validate_grammar(grammar, self.tokenizer)
        if error and not error.startswith("WARNING"):
            raise ValueError(f"The JSON schema cannot be used for constrained decoding: {error}")
        minimal = json.dumps(minimal_instance(sealed), ensure_ascii=False, separators=(", ", ": "))
        compiled = JsonGrammar(grammar, len(self.tokenizer.tokenize_str(minimal)) + _MARGIN)
        with self._lock:
            self._compiled[key] = compiled
        return compiled

    def session(self, grammar: JsonGrammar, max_new_tokens: int) -> "GrammarSession":
        """A fresh matcher for one answer of at most ``max_new_tokens`` tokens."""
        matcher = self._llguidance.LLMatcher(self.tokenizer, grammar.grammar)
        if matcher.is_error():
            raise ValueError(f"Could not start constrained decoding: {matcher.get_error()}")
        closing_from = max(0, max_new_tokens - grammar.reserve)
        return GrammarSession(matcher, self._tiers, self._pieces, self.vocab_size, closing_from)

    def _closing_tiers(self) -> tuple[np.ndarray, np.ndarray]:
        """Per token: its finishing rank outside a string, and inside one (higher is better)."""
        outside = np.zeros(self.vocab_size, dtype=np.int8)
        inside = np.zeros(self.vocab_size, dtype=np.int8)
        self._pieces = [self.tokenizer.decode_bytes([t]) for t in range(self.vocab_size)]
        for token, piece in enumerate(self._pieces):
            if piece[:1] == b'"':
                inside[token] = 2
            first = piece.lstrip(b" ")[:1]
            if first and first in b"}]":
                outside[token] = 4
            elif first == b",":
                outside[token] = 3
            elif first == b'"':
                outside[token] = 2
            elif first and first in b"-0123456789tfn":
                outside[token] = 1
        outside[self.eos_id] = inside[self.eos_id] = 5
        return outside, inside


class GrammarSession:
    """The grammar state of one answer: feed it the generated tokens, ask it what may follow."""

    def __init__(
        self, matcher: Any, tiers: tuple[np.ndarray, np.ndarray], pieces: Sequence[bytes],
        vocab_size: int, closing_from: int,
    ) -> None:
        self._matcher = matcher
        self._outside, self._inside = tiers
        self._pieces = pieces
        self._vocab_size = vocab_size
        self.closing_from = closing_from
        self._in_string = False
        self._escaped = False

    def advance(self, tokens: Sequence[int]) -> bool:
        """Consume generated tokens; False if one was not allowed (the session is then broken)."""
        for token in tokens:
            if token < len(self._pieces):
                self._scan(self._pieces[token])
        return bool(self._matcher.consume_tokens(list(tokens))) if tokens else True

    def allowed(self, generated: int) -> np.ndarray:
        """Boolean mask of the tokens allowed next, after ``generated`` tokens of the answer."""
        words = np.frombuffer(self._matcher.compute_bitmask(), dtype=np.uint8)
        allowed = np.unpackbits(words, bitorder="little")[: self._vocab_size].astype(bool)
        if generated >= self.closing_from and allowed.any():
            tiers = self._inside if self._in_string else self._outside
            best = tiers[allowed].max()
            allowed &= tiers == best
        return allowed

    def forced(self) -> list[int]:
        """The tokens the grammar forces next (llguidance's fast-forward tokens; often empty)."""
        if self.complete or self._matcher.is_error():
            return []
        return [int(t) for t in self._matcher.compute_ff_tokens()]

    @property
    def complete(self) -> bool:
        """Whether the JSON is finished: nothing but the end symbol may follow."""
        return bool(self._matcher.is_stopped())

    @property
    def error(self) -> str:
        """The matcher's error message ('' when fine)."""
        return str(self._matcher.get_error())

    def _scan(self, piece: bytes) -> None:
        """Follow whether the JSON written so far ends inside a string."""
        for byte in piece:
            if self._escaped:
                self._escaped = False
            elif self._in_string and byte == 0x5C:  # backslash
                self._escaped = True
            elif byte == 0x22:  # quote
                self._in_string = not self._in_string


def seal_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` where objects that do not say otherwise allow no extra properties."""
    sealed = copy.deepcopy(schema)
    _seal(sealed)
    return sealed


def _seal(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _seal(item)
        return
    if not isinstance(node, dict):
        return
    is_object = node.get("type") == "object" or "properties" in node
    if is_object and "additionalProperties" not in node and "patternProperties" not in node:
        node["additionalProperties"] = False
    for key, value in node.items():
        if key in ("properties", "$defs", "definitions"):
            for child in value.values():
                _seal(child)
        elif key in ("items", "anyOf", "oneOf", "allOf", "prefixItems", "additionalProperties"):
            _seal(value)


def minimal_instance(schema: dict[str, Any], root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A short value valid for ``schema`` (best effort, the longest option of a choice), to size
    the closing reserve."""
    root = root or schema
    if depth > 20 or not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        return minimal_instance(_resolve_ref(root, schema["$ref"]), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            # the longest of the options' minimal values: the reserve must fit whichever is taken
            values = [minimal_instance(option, root, depth + 1) for option in schema[key]]
            return max(values, key=lambda v: len(json.dumps(v, default=str)))
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(part)
        return minimal_instance(merged, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = "null" if "null" in kind else (kind[0] if kind else None)
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {name: minimal_instance(properties.get(name, {}), root, depth + 1)
                for name in schema.get("required", [])}
    if kind == "array":
        count = int(schema.get("minItems", 0))
        return [minimal_instance(schema.get("items", {}), root, depth + 1) for _ in range(count)]
    if kind == "string":
        return "x" * int(schema.get("minLength", 0))
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    return None


def _resolve_ref(root: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, dict) else {}
