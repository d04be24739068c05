"""The topic contract: every topic of an aloe graph, its type and its QoS, in one place.

Names are relative, so they resolve inside the node's namespace (default `/aloe`) and
several robots can share one DDS domain; only `/clock` is global, as ROS 2 expects it. The README's topic table is checked against
this module by the tests.
"""
from dataclasses import dataclass

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

# Images are fragmented by DDS; best-effort delivered 1 of 348 VGA frames between two
# processes here while reliable delivered all of them. The writer keeps 10 (a third of a
# second at 30 Hz): with 2, the recorder lost 1.8 % of 3 x VGA @ 30 Hz whenever it fell a
# few frames behind (benchmarks/recorder.py).
IMAGE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE
)
# The 50 Hz streams: every step matters to the recorder and the safety mux.
STREAM_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE
)
# Their publishers keep 4 s: DDS resends a reader that fell behind only what the writer
# still holds. With 10, a recorder stopped for 1.5 s in a lockstep recording (a loaded
# machine) lost 34 of its bag's 279 steps, however deep its own history.
STREAM_WRITER_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=200, reliability=ReliabilityPolicy.RELIABLE
)
# The robot's control loop acts on the newest command only: a queue would make it execute
# stale commands, one per tick, after any hiccup (and a timer that is always due, as with
# an unpaced simulator, never lets such a backlog drain).
NEWEST_ONLY_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE
)
# Episode events are rare and must reach late joiners (a recorder started mid-episode
# still learns the episode's task and instruction).
LATCHED_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

# What rclpy's time source subscribes with; every 20 ms tick supersedes the last.
CLOCK_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)

CAMERAS = ("head", "left_wrist", "right_wrist")


@dataclass(frozen=True)
class Topic:
    name: str
    type_name: str  # "package/msg/Type"
    qos: QoSProfile
    description: str

    @property
    def writer_qos(self) -> QoSProfile:
        """What a publisher of the topic uses: the contract's QoS, deeper for the streams."""
        return STREAM_WRITER_QOS if self.qos is STREAM_QOS else self.qos

    @property
    def msg_type(self):
        """The Python message class, imported on demand."""
        return message_class(self.type_name)


def message_class(type_name: str):
    """The rclpy message class of "package/msg/Type"."""
    package, _, type_ = type_name.split("/")
    return getattr(__import__(f"{package}.msg", fromlist=[type_]), type_)


def camera_topic(camera: str) -> str:
    return f"cameras/{camera}/image_raw"


CONTRACT = (
    *(
        Topic(camera_topic(c), "sensor_msgs/msg/Image", IMAGE_QOS, f"RGB image of the {c.replace('_', ' ')} camera")
        for c in CAMERAS
    ),
    Topic("joint_states", "sensor_msgs/msg/JointState", STREAM_QOS, "measured joint positions and velocities, 50 Hz"),
    Topic("policy/action_chunk", "aloe_msgs/msg/ActionChunk", STREAM_QOS, "each action chunk the actor emits"),
    Topic("policy/command", "aloe_msgs/msg/JointCommand", STREAM_QOS, "the policy's per-step command, input to the mux"),
    Topic("operator/command", "aloe_msgs/msg/JointCommand", STREAM_QOS, "the operator's teleop command, input to the mux"),
    Topic("command", "aloe_msgs/msg/JointCommand", STREAM_QOS, "the arbitrated 50 Hz command the robot executes"),
    Topic("episode", "aloe_msgs/msg/EpisodeEvent", LATCHED_QOS, "episode start and end (success, failure, abort)"),
    Topic("critic/q_value", "aloe_msgs/msg/QValue", STREAM_QOS, "the critic's Q of every executed chunk"),
    Topic("critic/takeover_request", "aloe_msgs/msg/TakeoverRequest", STREAM_QOS, "the critic asks the operator to take over"),
    Topic("task/stages", "aloe_msgs/msg/TaskStages", STREAM_QOS, "the task's stages done now, on every change (for `data.reward: stages`)"),
    Topic("/clock", "rosgraph_msgs/msg/Clock", CLOCK_QOS, "simulation time, one tick per 20 ms control step (simulator only)"),
)

BY_NAME = {topic.name: topic for topic in CONTRACT}


def resolve(namespace: str, name: str) -> str:
    """The absolute name of a contract topic or service in a robot namespace."""
    return name if name.startswith("/") else "/" + namespace.strip("/") + "/" + name


def topic(name: str) -> Topic:
    return BY_NAME[name]


@dataclass(frozen=True)
class Service:
    name: str
    type_name: str  # "package/srv/Type"
    server: str  # node that offers it
    description: str


SERVICES = (
    Service("start_episode", "aloe_msgs/srv/StartEpisode", "episode_manager", "start an episode with a task and instruction"),
    Service("end_episode", "aloe_msgs/srv/EndEpisode", "episode_manager", "end the running episode with its outcome"),
    Service("sim/reset", "aloe_msgs/srv/ResetSim", "sim_robot", "reset the simulator to a task, seed, variant and disturbances"),
    Service("emergency_stop", "std_srvs/srv/Trigger", "command_mux", "latch HOLD until `release` is called"),
    Service("release", "std_srvs/srv/Trigger", "command_mux", "clear an emergency stop"),
    Service("teleop/toggle", "std_srvs/srv/Trigger", "teleop", "the operator takes over, or hands back"),
    Service("load_checkpoint", "aloe_msgs/srv/LoadCheckpoint", "policy", "load a checkpoint; it takes over at the next chunk boundary"),
)
