"""The experiment: rolling checkpoints out in the simulator and scoring them (`evaluation`),
the post-training protocol behind `aloe experiment` (`protocol`), its report with plots
(`report`) and the memory of the process tree it runs (`process_memory`).
May import aloe.control, aloe.graph, aloe.sim, aloe.learning and aloe.data."""
