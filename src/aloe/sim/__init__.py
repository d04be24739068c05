"""The simulated bimanual robot (MuJoCo): scene, tasks, inverse kinematics, the scripted
operator, disturbances and the session the sim node runs. Imports no other aloe layer.
`TASK_NAMES` is here, free of MuJoCo's import, for the command line and the nodes that only
name tasks; `aloe.sim.tasks.TASKS` defines them."""
TASK_NAMES = ("insertion", "drawer", "sorting")
