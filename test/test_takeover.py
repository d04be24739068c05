"""The critic's takeover trigger: a low Q, or a sharp drop, once per episode phase."""
import pytest

from aloe.control.takeover import TakeoverMonitor


def test_off_by_default():
    monitor = TakeoverMonitor()
    assert all(monitor.observe(q) is None for q in (0.9, -5.0, 0.9, -100.0))


def test_a_q_below_the_threshold_asks_once_until_reset():
    monitor = TakeoverMonitor(below=0.2)
    assert monitor.observe(0.5) is None
    assert monitor.observe(0.1) == "pessimistic Q 0.100 below 0.200"
    assert monitor.observe(0.05) is None  # already asked
    monitor.reset()
    assert monitor.observe(0.05) is not None


def test_a_sharp_drop_within_the_window_asks_a_slow_decline_does_not():
    sharp = TakeoverMonitor(drop=0.3, window=3)
    for q in (0.8, 0.82, 0.81):
        assert sharp.observe(q) is None
    assert "fell by 0.420" in sharp.observe(0.40)
    slow = TakeoverMonitor(drop=0.3, window=3)
    assert all(slow.observe(0.8 - 0.09 * k) is None for k in range(8))  # 0.09 per chunk: 0.27 over the window


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="drop must be >= 0"):
        TakeoverMonitor(drop=-1.0)
