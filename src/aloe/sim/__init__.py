"""The simulated bimanual robot. `TASK_NAMES` is here, free of MuJoCo's import, for the
command line and the nodes that only name tasks; `aloe.sim.tasks.TASKS` defines them."""
TASK_NAMES = ("insertion", "drawer", "sorting")
