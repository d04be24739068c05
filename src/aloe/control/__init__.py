"""Robot-side control logic, pure Python with no ROS: arbitration between policy and operator
(`command_arbiter`), action-chunk execution and observation sync (`chunking`), the takeover
monitor (`takeover`), the teleop key mapping (`teleop`) and the episode book (`episodes`).
The nodes wrap these. Imports no other aloe layer."""
