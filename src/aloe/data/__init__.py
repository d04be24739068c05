"""Data in and out of bags: the episode bag format and the recorder's writer (`recording`),
bags to LeRobot datasets and back (`lerobot`), the ALOHA reference's demonstrations (`aloha`),
bags to learning episodes with their cache (`bag_dataset`), image messages to pixels
(`images`), republishing a bag and the critic's Q along it (`replay`), and scripted
demonstrations recorded in process (`demonstrations`).
May import aloe.control, aloe.graph, aloe.sim and aloe.learning."""
