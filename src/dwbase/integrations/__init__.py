"""Where agents are built: the MCP server and the LangGraph / LangChain adapters.

Each module imports its framework (``mcp``, ``langgraph``, ``langchain_core``) itself, so
``import dwbase`` and the engine never need these extras:

* :mod:`dwbase.integrations.mcp_server` — the MCP tools and resources (``dwbase mcp``);
* :mod:`dwbase.integrations.mcp_node` — the same server at ``/mcp`` on the node;
* :mod:`dwbase.integrations.langgraph` — ``DWBaseStore``, a LangGraph ``BaseStore``;
* :mod:`dwbase.integrations.langchain` — a retriever over ``ask`` and a chat history.

docs/integrations.md shows each one.
"""
