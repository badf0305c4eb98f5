"""AgentWorkflow: the four-stage agent pipeline as one deterministic Temporal workflow.

intent -> context (tool rounds; may wait for the user) -> execute (plan, steps) -> reflect
(re-execute with the critique while below threshold) -> done. Each stage, tool call and plan step
is an activity. Control is Temporal-native: the `submit_input` update and `provide_input` signal
resume a waiting run, `pause`/`resume` signals hold it before its next activity, `get_state`
queries it, and Temporal cancellation cancels it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RawValue
from temporalio.contrib.workflow_streams import WorkflowStream
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.context import ContextActivities
    from activities.executor import ExecutorActivities
    from activities.intent import IntentActivities
    from activities.models import (
        ContextInput,
        Intent,
        IntentInput,
        PlanInput,
        ReflectInput,
        StepInput,
        Sufficiency,
        ToolCall,
        ToolCallInput,
    )
    from activities.reflection import ReflectionActivities
    from activities.tools.catalog import Approval, ListToolsInput, ToolCatalog, needs_approval
    from shared import EVENTS_TOPIC, RUN_KIND, StreamEvent, ToolRecord
    from workflows import timeouts
    from workflows.execution import execute_method
    from workflows.limits import text_problem
    from workflows.patches import (
        CHECK_QUERY,
        LOCAL_TOOL_LISTING,
        RECORD_TOOL_CATALOG,
        REFUSE_EMPTY_ANSWER,
        SKIP_CALCULATION_REFLECTION,
        check_baseline,
    )
    from workflows.run_control import (
        RunControl,
        RunFailure,
        decode_input,
        failure_message,
    )
    from workflows.state import (
        TERMINAL_STATUSES,
        AgentInput,
        AgentState,
        ApprovalStatus,
        NodeState,
        NodeStatus,
        PendingToolCall,
        Reflection,
        RunStatus,
        Stage,
    )

# Stream items retained across continue-as-new; older offsets are dropped (a reconnecting client
# that asks for one is moved to the oldest retained item).
MAX_STREAM_ITEMS = 2000
# History events a waiting run must have gained since its wait began before it continues as new.
WAIT_HANDOVER_MARGIN = 20
# Tool results and user texts enter history; bound them (Temporal caps a payload at 2 MB).
MAX_CONTEXT_CHARS = 4000
# The most any query may hold, whatever the gateway's setting (it may only be lower).
MAX_QUERY_CHARS = 100_000

OutT = TypeVar("OutT", bound=BaseModel)


@workflow.defn
class AgentWorkflow(RunControl):
    _state: AgentState

    @workflow.init
    def __init__(self, raw: RawValue) -> None:
        now = workflow.now()
        # The worker never trusts its input: a run that cannot be read or run fails once, with
        # why (in `run`), instead of failing its workflow task on every attempt.
        inp, self._unrunnable = decode_input(raw, AgentInput)
        self._baseline = inp.baseline if inp is not None else 0
        check_baseline(self._baseline)
        if inp is None:
            inp = AgentInput(query="")
        elif inp.state is not None and inp.state.status in TERMINAL_STATUSES:
            self._unrunnable = f"the run's carried-over state is already {inp.state.status.value}"
        elif inp.state is None and self._patched(CHECK_QUERY):
            problem = text_problem(inp.query, MAX_QUERY_CHARS)
            if problem is not None:
                self._unrunnable = f"the run's query is not acceptable: {problem}"
        self._inp = inp
        if inp.state is not None:
            self._state = inp.state
            self._state.continued_as_new += 1
        else:
            self._state = AgentState(
                run_id=workflow.info().workflow_id,
                tenant=inp.tenant,
                query=inp.query,
                agent=inp.agent.name if inp.agent is not None else None,
                created_at=now,
                updated_at=now,
            )
        self._max_input_chars = inp.max_input_chars
        self._activities_this_run = 0
        # The run's durable event stream (SSE clients read it through the gateway). Publishing
        # from the workflow adds no history events; items are rebuilt on replay.
        self._stream = WorkflowStream(inp.stream)
        self._events = self._stream.topic(EVENTS_TOPIC, type=StreamEvent)

    # ---- queries -----------------------------------------------------------------------

    @workflow.query
    def get_state(self) -> AgentState:
        return self._state

    def _result_fields(self) -> dict[str, Any]:
        return {"answer": self._state.answer}

    def _on_input(self, text: str) -> None:
        self._state.user_inputs.append(text)
        self._state.contexts.append("User: " + text[:MAX_CONTEXT_CHARS])

    # ---- the run -------------------------------------------------------------------------

    @workflow.run
    async def run(self, raw: RawValue) -> AgentState:
        if self._unrunnable is not None:
            await self._fail_unrunnable(self._unrunnable)
        if self._state.status is RunStatus.PENDING:
            if not self._attributes_at_start:
                workflow.upsert_search_attributes([RUN_KIND.value_set(self._state.kind)])
            self._update_status(run=RunStatus.RUNNING, stage=None, message="started")
        try:
            while self._state.stage is not Stage.DONE:
                if self._activities_this_run > 0 and self._history_too_long():
                    await self._continue_as_new()
                await self._run_stage(self._state.stage)
        except asyncio.CancelledError:
            self._cancel_open_nodes()
            self._update_status(run=RunStatus.CANCELLED, message="cancelled")
            await self._finish_stream({"answer": self._state.answer})
            raise
        except RunFailure as exc:
            await self._fail(str(exc))
        except Exception as exc:
            if isinstance(exc, workflow.NondeterminismError):
                raise  # a deploy that breaks replay: the task fails until the code is fixed
            # Anything else (a bug, a forged carried-over state) fails the run with the error
            # instead of its workflow task, which Temporal would retry forever: no run hangs.
            await self._fail(f"internal error: {type(exc).__name__}: {str(exc)[:300]}")
        if not (self._state.answer or "").strip() and self._patched(REFUSE_EMPTY_ANSWER):
            await self._fail("the run produced no answer (the model's final answer was empty)")
        self._update_status(run=RunStatus.COMPLETED, message="answered")
        await self._finish_stream({"answer": self._state.answer})
        return self._state

    async def _continue_as_new(self) -> None:
        log = self._stream.get_state()
        if len(log.log) > MAX_STREAM_ITEMS:  # the next run carries the newest items
            self._stream.truncate(log.base_offset + len(log.log) - MAX_STREAM_ITEMS)
        inp = self._inp.model_copy(update={"state": self._state})
        await self._stream.continue_as_new(lambda s: [inp.model_copy(update={"stream": s})])

    def _history_too_long(self) -> bool:
        info = workflow.info()
        return (
            info.get_current_history_length() > self._inp.history_threshold
            or info.is_continue_as_new_suggested()
        )

    async def _run_stage(self, stage: Stage) -> None:
        if stage is Stage.INTENT:
            await self._intent()
        elif stage is Stage.CONTEXT:
            await self._context()
        elif stage is Stage.EXECUTE:
            await self._execute()
        elif stage is Stage.REFLECT:
            await self._reflect()

    def _agent_fields(self, stage: str) -> dict[str, Any]:
        """What the run's agent definition tells a stage's activity (nothing for runs started
        before definitions: their inputs stay as they were)."""
        agent = self._inp.agent
        if agent is None:
            return {}
        return {"instructions": agent.instructions, "model": agent.model_for(stage)}

    def _small_talk(self) -> dict[str, Any]:
        # Only an agent that turns small talk off changes the intent stage's input.
        agent = self._inp.agent
        return {"small_talk": False} if agent is not None and not agent.small_talk else {}

    async def _intent(self) -> None:
        out = await self._activity(
            "intent",
            IntentActivities.analyze_intent,
            IntentInput(
                query=self._state.query, **self._agent_fields("intent"), **self._small_talk()
            ),
        )
        self._state.intent = out.intent.value
        if out.intent is Intent.SIMPLE_CHAT:
            if not (out.answer or "").strip() and self._patched(REFUSE_EMPTY_ANSWER):
                # Small talk without a reply: the pipeline answers it instead.
                self._state.intent = Intent.QUESTION.value
                self._log_event("control", "the intent stage gave no reply; answering in full")
                self._update_status(stage=Stage.CONTEXT)
                return
            self._state.answer = out.answer
            self._update_status(stage=Stage.DONE)
        else:
            self._update_status(stage=Stage.CONTEXT)

    async def _context(self) -> None:
        state = self._state
        if state.tools is None and self._patched(RECORD_TOOL_CATALOG):
            listed = await self._activity(
                "list-tools",
                ContextActivities.list_tools,
                ListToolsInput(),
                options=timeouts.TOOL_LISTING,
                local=self._patched(LOCAL_TOOL_LISTING),
            )
            state.tools = self._agent_tools(listed)
            for server, reason in state.tools.unavailable.items():
                self._log_event("control", f"MCP server {server} left out: {reason}")
        if state.pending_tool_calls:
            # Continued as new while the round's calls waited for approvals: go on waiting.
            await self._tool_round(state.pending_tool_calls)
        if state.status is RunStatus.WAITING_FOR_INPUT:
            # Continued as new while waiting: go on waiting for the same question.
            await self._wait_for_input(state.question or "Could you tell me more?")
        while True:
            if state.context_rounds >= self._inp.max_context_rounds:
                if state.contexts:
                    break  # what we have is the best we will get: PARTIAL
                await self._wait_for_input(
                    "I could not gather enough context to answer. What should I use?"
                )
                continue
            state.context_rounds += 1
            out = await self._activity(
                f"context-round-{state.context_rounds}",
                ContextActivities.assess_context,
                ContextInput(
                    query=state.query,
                    intent=Intent(state.intent or Intent.QUESTION.value),
                    contexts=state.contexts,
                    user_inputs=state.user_inputs,
                    tool_history=state.tool_history,
                    round=state.context_rounds,
                    tools=state.tools.tools if state.tools is not None else [],
                    tools_restricted=self._inp.agent is not None
                    and self._inp.agent.tools is not None,
                    **self._agent_fields("context"),
                ),
            )
            if out.tool_calls:
                await self._tool_round(
                    [PendingToolCall(name=c.name, arguments=c.arguments) for c in out.tool_calls]
                )
                continue
            if out.sufficiency is Sufficiency.INSUFFICIENT:
                await self._wait_for_input(out.question or "Could you tell me more?")
                continue
            break
        self._update_status(stage=Stage.EXECUTE)

    def _agent_tools(self, listed: ToolCatalog) -> ToolCatalog:
        """The run's catalog: what the worker listed, cut to the agent's tools, with the
        agent's extra approvals (they may add an approval, never waive one)."""
        agent = self._inp.agent
        if agent is None:
            return listed
        tools = []
        for spec in listed.tools:
            if not agent.allows(spec.name):
                continue
            if agent.requires_approval(spec.name):
                spec = spec.model_copy(update={"approval": Approval.ALWAYS})
            tools.append(spec)
        return listed.model_copy(update={"tools": tools})

    async def _tool_round(self, calls: list[PendingToolCall]) -> None:
        """Run one round's calls in parallel; those whose tool needs approval wait first for a
        person's decision (each decided on its own), and a denied call never runs."""
        state = self._state
        agent = self._inp.agent
        if agent is not None and agent.tools is not None:
            # A model may ask for a tool it was not offered: such a call never runs.
            for call in [c for c in calls if not agent.allows(c.name)]:
                self._refuse_call(call, f"{call.name} is not one of agent {agent.name}'s tools")
            calls = [c for c in calls if agent.allows(c.name)]
        catalog = state.tools.tools if state.tools is not None else None
        if any(needs_approval(catalog, call.name) for call in calls):
            state.pending_tool_calls = calls
            for call in calls:
                if call.approval_id is None and needs_approval(catalog, call.name):
                    call.approval_id = self._request_approval(call.name, call.arguments).id
            await self._wait_for_approvals([c.approval_id for c in calls if c.approval_id])
            state.pending_tool_calls = []
        await asyncio.gather(*(self._approved_call(call) for call in calls))

    def _refuse_call(self, call: PendingToolCall, why: str) -> None:
        result = f"{why}; the call did not run"
        self._state.tool_history.append(
            ToolRecord(name=call.name, arguments=call.arguments, ok=False, result=result)
        )
        self._log_event(
            "tool_call",
            f"{call.name} refused",
            name=call.name,
            arguments=call.arguments,
            ok=False,
            result=result,
        )

    async def _approved_call(self, call: PendingToolCall) -> None:
        request = self._approval(call.approval_id) if call.approval_id else None
        if request is None or request.status is ApprovalStatus.APPROVED:
            await self._tool_call(ToolCall(name=call.name, arguments=call.arguments))
            return
        # Denied: the call does not run; the denial is its result for the next round.
        result = f"denied by a person{': ' + request.reason if request.reason else ''}"
        result += "; the call did not run"
        self._state.tool_history.append(
            ToolRecord(name=call.name, arguments=call.arguments, ok=False, result=result)
        )
        self._log_event(
            "tool_call",
            f"{call.name} denied",
            name=call.name,
            arguments=call.arguments,
            ok=False,
            result=result,
        )

    async def _wait_for_approvals(self, approval_ids: list[str]) -> None:
        state = self._state
        limit = timedelta(seconds=self._inp.input_timeout_s)
        remaining = limit - (workflow.now() - (state.waiting_since or workflow.now()))
        info = workflow.info()
        wait_began_at = info.get_current_history_length()

        def grown_too_long() -> bool:
            # As for input: a long wait's history grows with polls; hand over to a fresh run.
            length = info.get_current_history_length()
            return self._history_too_long() and length > wait_began_at + WAIT_HANDOVER_MARGIN

        def decided() -> bool:
            return all(self._approval_decided(approval_id) for approval_id in approval_ids)

        try:
            await workflow.wait_condition(
                lambda: decided() or grown_too_long(),
                timeout=max(remaining, timedelta(seconds=1)),
            )
        except (TimeoutError, asyncio.CancelledError) as exc:
            tools = []
            for approval_id in approval_ids:
                request = self._approval(approval_id)
                if request is not None and request.status is ApprovalStatus.PENDING:
                    request.status = ApprovalStatus.EXPIRED
                    request.decided_at = workflow.now()
                    tools.append(request.tool)
                    self._log_approval(request)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise RunFailure(
                f"no decision on the call of {', '.join(tools)} arrived within "
                f"{_describe(limit)}; the run stopped waiting"
            ) from None
        if not decided():
            await self._continue_as_new()

    async def _tool_call(self, call: ToolCall) -> None:
        try:
            out = await self._activity(
                f"tool-{call.name}",
                ContextActivities.run_tool,
                ToolCallInput(name=call.name, arguments=call.arguments),
                options=timeouts.TOOL_CALL,
            )
        except RunFailure as exc:
            # A tool that fails for good is reported to the next context round, not fatal.
            self._state.tool_history.append(
                ToolRecord(name=call.name, arguments=call.arguments, ok=False, result=str(exc))
            )
            self._state.errors.append(f"tool {call.name}: {exc}")
            self._log_event(
                "tool_call",
                f"{call.name} failed",
                name=call.name,
                arguments=call.arguments,
                ok=False,
                result=str(exc),
            )
            return
        result = out.result[:MAX_CONTEXT_CHARS]
        self._state.tool_history.append(
            ToolRecord(name=call.name, arguments=call.arguments, ok=True, result=result)
        )
        self._log_event(
            "tool_call",
            f"{call.name} answered",
            name=call.name,
            arguments=call.arguments,
            ok=True,
            result=result,
        )
        if not out.empty:
            self._state.contexts.append(result)

    async def _wait_for_input(self, question: str) -> None:
        state = self._state
        if state.status is not RunStatus.WAITING_FOR_INPUT:
            state.question = question
            state.waiting_since = workflow.now()
            self._update_status(run=RunStatus.WAITING_FOR_INPUT, message=question)
            self._log_event("question", question, question=question)
        limit = timedelta(seconds=self._inp.input_timeout_s)
        remaining = limit - (workflow.now() - (state.waiting_since or workflow.now()))
        info = workflow.info()
        wait_began_at = info.get_current_history_length()

        def grown_too_long() -> bool:
            # Subscribers' polls and stray signals grow the history of a waiting run; hand over
            # to a fresh run (still waiting) before it grows too long. The margin keeps a fresh
            # run from handing over again at once.
            length = info.get_current_history_length()
            return self._history_too_long() and length > wait_began_at + WAIT_HANDOVER_MARGIN

        try:
            await workflow.wait_condition(
                lambda: state.status is not RunStatus.WAITING_FOR_INPUT or grown_too_long(),
                timeout=max(remaining, timedelta(seconds=1)),
            )
        except TimeoutError:
            raise RunFailure(
                f"no input arrived within {_describe(limit)}; the run stopped waiting"
            ) from None
        if state.status is RunStatus.WAITING_FOR_INPUT:
            await self._continue_as_new()
        state.waiting_since = None
        state.context_rounds = 0  # new information earns a fresh set of rounds

    async def _execute(self) -> None:
        state = self._state
        intent = Intent(state.intent or Intent.QUESTION.value)
        plan = await self._activity(
            "plan",
            ExecutorActivities.make_plan,
            PlanInput(
                query=state.query,
                intent=intent,
                contexts=state.contexts,
                critique=state.critique,
                **self._agent_fields("execute"),
            ),
        )
        state.plan = plan.steps
        state.step_results = []
        for index, step in enumerate(plan.steps):
            out = await self._activity(
                f"step-{index + 1}",
                ExecutorActivities.run_step,
                StepInput(
                    query=state.query,
                    intent=intent,
                    step=step,
                    index=index,
                    total=len(plan.steps),
                    contexts=state.contexts,
                    previous_results=state.step_results,
                    critique=state.critique,
                    **self._agent_fields("execute"),
                    **self._output_schema(),
                ),
            )
            state.step_results.append(out.result[:MAX_CONTEXT_CHARS])
        state.answer = state.step_results[-1] if state.step_results else None
        self._update_status(stage=Stage.REFLECT)

    def _output_schema(self) -> dict[str, Any]:
        agent = self._inp.agent
        if agent is None or agent.output_schema is None:
            return {}
        return {"output_schema": agent.output_schema}

    async def _reflect(self) -> None:
        state = self._state
        agent = self._inp.agent
        if agent is not None and not agent.reflection.enabled:
            self._update_status(stage=Stage.DONE)
            return
        # Versioned change (docs/versioning.md): a calculator result is exact, so reflecting on
        # it costs a model call for nothing. Runs recorded before this change have a `reflect`
        # activity here; `patched` keeps them replaying it, new runs skip it.
        if state.intent == Intent.CALCULATION.value and self._patched(SKIP_CALCULATION_REFLECTION):
            state.reflection = Reflection(score=1.0, critique="exact calculator result")
            self._update_status(stage=Stage.DONE)
            return
        await self._reflect_with_activity()

    async def _reflect_with_activity(self) -> None:
        state = self._state
        out = await self._activity(
            "reflect",
            ReflectionActivities.reflect,
            ReflectInput(
                query=state.query,
                intent=Intent(state.intent or Intent.QUESTION.value),
                answer=state.answer or "",
                contexts=state.contexts,
                attempt=state.reflection_retries + 1,
                **self._agent_fields("reflect"),
            ),
        )
        state.reflection = Reflection(score=out.score, critique=out.critique)
        retry = (
            out.score < self._inp.reflection_threshold
            and state.reflection_retries < self._inp.max_reflection_retries
        )
        if retry:
            state.reflection_retries += 1
            state.critique = out.critique
            self._update_status(stage=Stage.EXECUTE)
        else:
            self._update_status(stage=Stage.DONE)

    # ---- running one activity as one node ----------------------------------------------

    async def _activity(
        self,
        name: str,
        method: Callable[[Any, Any], Awaitable[OutT]],
        arg: BaseModel,
        options: workflow.ActivityConfig = timeouts.LLM_STAGE,
        local: bool = False,
    ) -> OutT:
        await self._hold_if_paused()
        now = workflow.now()
        node = NodeState(id=f"{len(self._state.nodes) + 1}-{name}", name=name, created_at=now)
        self._state.nodes.append(node)
        self._update_status(node=node, node_status=NodeStatus.EXECUTING)
        self._activities_this_run += 1
        try:
            out = await execute_method(
                method,
                arg,
                execution="local"
                if local or (self._inp.agent and self._inp.agent.execution == "local")
                else "remote",
                config=options | {"summary": name},
            )
        except ActivityError as exc:
            if isinstance(exc.cause, CancelledError):
                # The run was cancelled and the activity acknowledged it (we waited for that).
                self._update_status(node=node, node_status=NodeStatus.CANCELLED)
                raise asyncio.CancelledError() from None
            message = failure_message(exc)
            self._update_status(node=node, node_status=NodeStatus.FAILED, error=message)
            raise RunFailure(f"{name} failed: {message}") from None
        except asyncio.CancelledError:
            self._update_status(node=node, node_status=NodeStatus.CANCELLED)
            raise
        usage = getattr(out, "usage", None)
        if usage is not None:
            self._state.usage.add(usage)
            node.usage = usage
        self._update_status(node=node, node_status=NodeStatus.COMPLETED)
        return out

    def _cancel_open_nodes(self) -> None:
        for node in self._state.nodes:
            if node.status in (NodeStatus.CREATED, NodeStatus.EXECUTING):
                self._update_status(node=node, node_status=NodeStatus.CANCELLED)


def _describe(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
