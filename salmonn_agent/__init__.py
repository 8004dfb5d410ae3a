"""salmonn-agent: ears for conversational agents."""
