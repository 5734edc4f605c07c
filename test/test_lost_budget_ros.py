"""The node's ``lost_search_budget_ms`` parameter over DDS (issue #29): real node processes.

It takes ``auto`` (the default), ``off`` or milliseconds, typed as a string or, as the command
line types ``25``, as a number; it can change at run time; anything else is refused, at
start-up with one clear line and at run time with a reason.
"""

from __future__ import annotations

import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from test_node_ros import DIAGNOSTICS, STARTUP_TIMEOUT_S, TrackerClient, stop_cleanly

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NAME = "lost_search_budget_ms"


def _value(value: str | float) -> ParameterValue:
    if isinstance(value, str):
        return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=float(value))


def _get(client: TrackerClient) -> ParameterValue:
    (value,) = client.parameter_call(GetParameters, "get_parameters", GetParameters.Request(names=[NAME])).values
    return value


def _set(client: TrackerClient, value: str | float):
    request = SetParameters.Request(parameters=[Parameter(name=NAME, value=_value(value))])
    (result,) = client.parameter_call(SetParameters, "set_parameters", request).results
    return result


def test_budget_parameter_is_declared_accepted_and_validated(tracker_node, ros_node):
    # 25 on the command line is an integer parameter: the descriptor takes any type.
    process = tracker_node(DIAGNOSTICS, "device:=cpu", f"{NAME}:=25")
    client = TrackerClient(ros_node, process)
    client.wait_for_node()
    got = _get(client)
    assert got.type == ParameterType.PARAMETER_INTEGER and got.integer_value == 25

    for accepted in ("auto", "off", 12.5, "40"):  # (off on the command line: test_lost_target_ros.py)
        result = _set(client, accepted)
        assert result.successful, (accepted, result.reason)
    assert _get(client).string_value == "40"
    for refused in ("fast", "-3", 0.0):
        result = _set(client, refused)
        assert not result.successful and NAME in result.reason and "milliseconds" in result.reason, result.reason
    assert _get(client).string_value == "40", "a refused value leaves the last good one"
    stop_cleanly(process)


def test_a_bad_budget_at_start_up_exits_with_one_clear_line(tracker_node):
    peer = tracker_node(f"{NAME}:=fast", "device:=cpu")
    code = peer.process.wait(timeout=STARTUP_TIMEOUT_S)
    output = peer.output()
    errors = [line for line in output.splitlines() if "FATAL" in line or "ERROR" in line]
    assert code == 2 and len(errors) == 1 and f"{NAME} must be auto, off or a number" in errors[0], output
    assert "Traceback" not in output
