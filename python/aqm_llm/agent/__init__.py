"""The Python agent of an l4s-llm run: the state encoder, LLM backbone and L4S-LM head
(as in NetLLM), the agent interface, stub agents and the agent process (``server``).

Importing this package imports neither torch nor transformers: ``interface``, ``stub``,
``features``, ``layout`` and ``reward`` are numpy only; the torch modules (``encoder``,
``backbone``, ``head``, ``model``, ``policy``) load when imported.
"""
