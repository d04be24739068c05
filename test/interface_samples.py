"""One filled-in instance of every aloe_msgs interface, and a deterministic service handler.

Shared by the in-process tests and the peer process of the cross-process tests, so both
sides build exactly the same values.
"""
from aloe_msgs.msg import ActionChunk, EpisodeEvent, JointCommand, QValue, TakeoverRequest, TaskStages
from aloe_msgs.srv import EndEpisode, LoadCheckpoint, StartEpisode


def sample_messages():
    chunk = ActionChunk(horizon=50, action_dim=14, actions=[0.001 * i for i in range(700)], chunk_id=2**40 + 3, policy_version="v7-abc")
    chunk.header.frame_id = "base"
    chunk.header.stamp.sec, chunk.header.stamp.nanosec = 12, 345
    command = JointCommand(positions=[0.5 * i - 3.0 for i in range(14)], source=JointCommand.SOURCE_OPERATOR, policy_version="v7-abc", chunk_id=9, step=49)
    event = EpisodeEvent(episode_id="sim-20261125T000000-0001", kind=EpisodeEvent.FAILURE, task="insertion", instruction="put the phone in the box", reason="time limit")
    q_value = QValue(chunk_id=11, pessimistic=-0.25, mean=0.5, std=0.125, members=[0.25, 0.5, 0.75], policy_version="v7-abc")
    takeover = TakeoverRequest(chunk_id=12, q=-0.5, reason="Q -0.50 below -0.40", policy_version="v7-abc")
    stages = TaskStages(task="drawer", names=["opened", "placed", "closed"], done=[True, True, False])
    stages.header.stamp.sec = 7
    return {"ActionChunk": chunk, "JointCommand": command, "EpisodeEvent": event, "QValue": q_value, "TakeoverRequest": takeover,
            "TaskStages": stages}


SERVICE_TYPES = {"LoadCheckpoint": LoadCheckpoint, "StartEpisode": StartEpisode, "EndEpisode": EndEpisode}


def sample_requests():
    return {
        "LoadCheckpoint": LoadCheckpoint.Request(path="/ckpt/round3"),
        "StartEpisode": StartEpisode.Request(task="sorting", instruction="red cube to the left bin", seed=4242, variant="unseen"),
        "EndEpisode": EndEpisode.Request(outcome=EpisodeEvent.SUCCESS, reason="detector"),
    }


def answer(name, request, response):
    """The response a test server gives: every field derived from the request."""
    if name == "LoadCheckpoint":
        response.success, response.message, response.policy_version = True, f"loaded {request.path}", request.path[::-1]
    elif name == "StartEpisode":
        response.success, response.message = True, request.instruction.upper()
        response.episode_id = f"{request.task}-{request.seed}-{request.variant}"
    else:
        response.success, response.message, response.episode_id = request.outcome == EpisodeEvent.SUCCESS, request.reason, "ep"
    return response


def expected_response(name, request):
    return answer(name, request, SERVICE_TYPES[name].Response())
