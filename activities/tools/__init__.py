"""Tools the agent can call. Each tool is a plain function with a pydantic argument model."""
