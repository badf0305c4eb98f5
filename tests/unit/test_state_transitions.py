import pytest

from workflows.state import (
    NODE_TRANSITIONS,
    RUN_TRANSITIONS,
    STAGE_TRANSITIONS,
    TERMINAL_STATUSES,
    IllegalTransition,
    NodeStatus,
    RunStatus,
    Stage,
    check_node_transition,
    check_run_transition,
    check_stage_transition,
)


def test_every_status_has_a_row() -> None:
    assert set(RUN_TRANSITIONS) == set(RunStatus)
    assert set(STAGE_TRANSITIONS) == set(Stage)
    assert set(NODE_TRANSITIONS) == set(NodeStatus)


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
def test_terminal_statuses_are_final(terminal: RunStatus) -> None:
    for target in RunStatus:
        with pytest.raises(IllegalTransition):
            check_run_transition(terminal, target)


def test_the_normal_life_of_a_run_is_allowed() -> None:
    path = [
        RunStatus.PENDING,
        RunStatus.RUNNING,
        RunStatus.WAITING_FOR_INPUT,
        RunStatus.RUNNING,
        RunStatus.PAUSED,
        RunStatus.RUNNING,
        RunStatus.COMPLETED,
    ]
    for old, new in zip(path, path[1:], strict=False):
        check_run_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (RunStatus.PENDING, RunStatus.COMPLETED),
        (RunStatus.PENDING, RunStatus.WAITING_FOR_INPUT),
        (RunStatus.PAUSED, RunStatus.WAITING_FOR_INPUT),
        (RunStatus.RUNNING, RunStatus.PENDING),
        (RunStatus.RUNNING, RunStatus.RUNNING),
    ],
)
def test_illegal_run_transitions_raise(old: RunStatus, new: RunStatus) -> None:
    with pytest.raises(IllegalTransition, match=f"{old.value} -> {new.value}"):
        check_run_transition(old, new)


def test_stages_move_forward_except_the_reflection_retry() -> None:
    check_stage_transition(Stage.INTENT, Stage.DONE)  # simple chat
    check_stage_transition(Stage.REFLECT, Stage.EXECUTE)  # reflection retry
    for old, new in [
        (Stage.CONTEXT, Stage.INTENT),
        (Stage.DONE, Stage.INTENT),
        (Stage.INTENT, Stage.EXECUTE),
    ]:
        with pytest.raises(IllegalTransition):
            check_stage_transition(old, new)


def test_node_lifecycle_of_reference_000() -> None:
    path = [
        NodeStatus.CREATED,
        NodeStatus.INITIALIZING,
        NodeStatus.INITIALIZED,
        NodeStatus.EXECUTING,
        NodeStatus.COMPLETED,
    ]
    for old, new in zip(path, path[1:], strict=False):
        check_node_transition(old, new)
    with pytest.raises(IllegalTransition):
        check_node_transition(NodeStatus.COMPLETED, NodeStatus.EXECUTING)
    with pytest.raises(IllegalTransition):
        check_node_transition(NodeStatus.CREATED, NodeStatus.COMPLETED)
