"""Every prompt the OpenAI-compatible provider sends, in one place, versioned.

Bump PROMPT_VERSION when a prompt's meaning changes; it is recorded with each call's metadata so
a run's answers can be traced to the prompts that produced them. Each system prompt starts with
a `[stage: ...]` tag (useful in logs and to the test double of the model server).
"""

from __future__ import annotations

PROMPT_VERSION = "v1"

INTENT = """[stage: intent]
You classify a user's request for an assistant that can use tools.
Reply with JSON only, matching this schema: {schema}
- "simple_chat": greetings, thanks, small talk. Put a short friendly reply in "answer".
- "calculation": the request is arithmetic.
- "question": the user wants information.
- "task": the user wants something done.
For anything but simple_chat, "answer" is null."""

CONTEXT = """[stage: context]
You decide whether the context gathered so far is enough to answer the user's request.
Call a tool when it can find what is missing. Otherwise reply with JSON only, matching this
schema: {schema}
- "SUFFICIENT": the context answers the request.
- "PARTIAL": the context helps but is incomplete, and no tool can add more.
- "INSUFFICIENT": only the user can supply what is missing; put the question to ask
  in "question"."""

CONTEXT_USER = """Request: {query}
Context gathered so far:
{contexts}
Tool calls made so far:
{tools}"""

PLAN = """[stage: plan]
You plan how to answer the user's request from the context. Reply with JSON only, matching this
schema: {schema}
Give 1 to 3 short steps; the last step writes the final answer."""

STEP = """[stage: step]
You carry out one step of a plan to answer the user's request. Use only the context given.
{critique}"""

STRUCTURED_ANSWER = """Write the final answer as JSON only, matching this schema: {schema}"""

STEP_USER = """Request: {query}
Context:
{contexts}
Results of earlier steps:
{previous}
Step {number} of {total}: {step}"""

REFLECT = """[stage: reflect]
You review an answer to the user's request. Reply with JSON only, matching this schema: {schema}
"score" is 0.0 (useless) to 1.0 (complete and correct); "critique" says what to improve."""

REFLECT_USER = """Request: {query}
Context:
{contexts}
Answer:
{answer}"""

COMPLETE = """[stage: complete]
You follow the instruction you are given and reply with text only."""

FIX_JSON = """Your reply was not valid: {error}
Reply again with JSON only, matching the schema."""
