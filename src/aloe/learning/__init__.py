"""The learning core, free of ROS: configs as dataclasses (`config`), episodes to chunk
transitions (`data`), the encoder's camera view (`camera_view`), language (`text`),
networks (`networks`), the critic and the advantage-weighted improvement (`algorithm`),
training (`train`), checkpoints (`checkpoint`, `resume`), the policy as the robot runs it
(`policy`), synthetic episodes and exact-value MDPs for tests (`synthetic`, `exact_mdps`).
Imports no other aloe layer: it sees episodes, never bags or topics."""
