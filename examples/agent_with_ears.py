"""A LangGraph agent with ears: any tool-calling chat model, plus SALMONN's hearing tools.

    python examples/agent_with_ears.py "What does the speaker ask for?"      # examples/audio/speech.wav
    python examples/agent_with_ears.py --input meeting.wav "How many people speak?"
    python examples/agent_with_ears.py --mic "What did I just say?"          # the agent listens itself
    python examples/agent_with_ears.py --brain langchain_openai:ChatOpenAI --brain-model gpt-4o-mini "..."

The brain is a ReAct loop built with LangGraph (``pip install "salmonn-agent[agents]"``): the
chat model decides which hearing tool to call (transcribe, describe_audio, ask_about_audio,
listen), SALMONN answers it, and the brain answers the question. The brain is ``--brain
module:attr`` (a chat model class or factory, called with ``model=--brain-model`` when given),
by default SALMONN itself (the embedded default model, or ``--model DIR``). A brain that hears
audio itself (its ``model_profile`` says so, as SALMONN's does) needs no plan: the question goes
to it with the audio, through the same hearing tool (``ask_about_audio``, or ``listen`` with
``--mic``), as the voice assistant hands audio to a brain that hears. The agent can hear the
files in ``--input``'s folder only.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import BaseTool
try:
    from langgraph.errors import GraphRecursionError
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.graph.state import CompiledStateGraph
    from langgraph.prebuilt import ToolNode, tools_condition
except ImportError:  # the example's one extra dependency: say how to get it, not a traceback
    sys.exit('error: this example needs LangGraph: pip install "salmonn-agent[agents]" (or pip install langgraph)')

from salmonn_agent.agent.audio_refs import AudioResolver, WindowStore
from salmonn_agent.agent.hearing import HearingTools
from salmonn_agent.chat_model import ChatSALMONN
from salmonn_agent.errors import AudioError, ConfigError, SalmonnError
from salmonn_agent.registry import load_model, profile_of, resolve_model_name

SPEECH = Path(__file__).resolve().parent / "audio" / "speech.wav"
SYSTEM = (
    "You answer questions about audio. You cannot hear anything yourself: call one of your "
    "hearing tools with the audio you are given, then answer the question in one or two sentences."
)


def build_agent(brain: BaseChatModel, tools: list[BaseTool]) -> CompiledStateGraph:
    """The ReAct graph: the brain, then the tools it called, then the brain again, until it answers."""
    model = brain.bind_tools(tools)

    def think(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke([SystemMessage(SYSTEM), *state["messages"]])]}

    graph = StateGraph(MessagesState)
    graph.add_node("brain", think)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "brain")
    graph.add_conditional_edges("brain", tools_condition)  # tool calls → "tools", else the end
    graph.add_edge("tools", "brain")
    return graph.compile()


def load_brain(spec: str, model: str | None) -> BaseChatModel:
    """``module:attr`` (e.g. ``langchain_ollama:ChatOllama``), called with ``model=`` when given."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ConfigError(f"--brain {spec!r} must look like module:attr, e.g. langchain_ollama:ChatOllama.")
    try:
        factory: Any = getattr(importlib.import_module(module), attr)
    except ImportError as err:
        raise ConfigError(f"--brain {spec!r}: cannot import {module!r} ({err}); install the package that "
                          f"provides it, e.g. pip install {module.split('.')[0].replace('_', '-')}.") from None
    except AttributeError:
        raise ConfigError(f"--brain {spec!r}: module {module!r} has no {attr!r}.") from None
    return factory(model=model) if model else factory()


def show(message: BaseMessage) -> None:
    """Print one step of the agent: a tool call, a tool's answer, or the final answer."""
    if isinstance(message, AIMessage) and message.tool_calls:
        for call in message.tool_calls:
            args = ", ".join(f"{k}={v!r}" for k, v in call["args"].items())
            print(f"call {call['name']}({args})", flush=True)
    elif isinstance(message, ToolMessage):
        print(f"{message.name} -> {message.text.strip()}", flush=True)
    elif isinstance(message, AIMessage):
        print(f"answer: {message.text.strip()}", flush=True)


def main() -> int:
    """Ask the agent one question about a file (or about what the microphone hears)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default="What is said in this audio?")
    parser.add_argument("--model", help="the hearing model: a salmonn-agent model directory (default: the embedded model)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", type=Path, default=SPEECH, metavar="FILE", help="the audio to ask about")
    source.add_argument("--mic", action="store_true", help="give the agent the microphone (the listen tool) instead")
    parser.add_argument("--brain", metavar="MODULE:ATTR", help="the agent's chat model (default: SALMONN)")
    parser.add_argument("--brain-model", metavar="NAME", help="model name passed to --brain")
    parser.add_argument("--max-tokens", type=int, default=128, help="longest SALMONN answer in tokens")
    parser.add_argument("--max-steps", type=int, default=8, help="most graph steps before giving up")
    args = parser.parse_args()

    try:
        if not args.mic and not args.input.is_file():
            raise AudioError(f"Audio file not found: {str(args.input)!r}. Check the path.")
        brain = load_brain(args.brain, args.brain_model) if args.brain else None  # before the model loads
        ears = ChatSALMONN(client=load_model(args.model), model=resolve_model_name(args.model),
                           temperature=0, max_tokens=args.max_tokens)
        folder = None if args.mic else args.input.resolve().parent
        brain = brain or ears
        if profile_of(brain).hears_audio:  # it hears the audio itself: ask it, no tool plan needed
            hearing = HearingTools(brain, AudioResolver(folder, WindowStore()))
            if args.mic:
                print(f"answer: {hearing.listen(args.question)}", flush=True)
            else:
                print(f"answer: {hearing.ask_about_audio(args.input.name, args.question)}", flush=True)
            return 0
        hearing = HearingTools(ears, AudioResolver(folder, WindowStore()))
        tools = [t for t in hearing.tools() if args.mic or t.name != "listen"]
        agent = build_agent(brain, tools)

        where = "Use the listen tool to hear the user." if args.mic else f"The audio is {args.input.name!r}."
        request = {"messages": [HumanMessage(f"{args.question}\n{where}")]}
        for update in agent.stream(request, {"recursion_limit": args.max_steps}, stream_mode="updates"):
            for change in update.values():
                for message in change["messages"]:
                    show(message)
    except SalmonnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except GraphRecursionError:
        print(f"error: the agent did not answer within {args.max_steps} steps", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
